package guard

import "os"

// OS is the running system.
type OS struct{}

// ReadFile is os.ReadFile.
func (OS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// Getpid is os.Getpid.
func (OS) Getpid() int { return os.Getpid() }
