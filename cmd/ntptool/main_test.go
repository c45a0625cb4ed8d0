package main

import (
	"os"
	"testing"

	"github.com/ntptool/ntptool/internal/peers"
)

func TestMain(m *testing.M) {
	code := m.Run()
	peers.RemoveBuild()
	os.Exit(code)
}
