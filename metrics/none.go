//go:build nometrics

package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
)

// Available says whether this binary serves metrics: not when built with
// -tags nometrics.
const Available = false

// ServeHolder refuses: this binary was built without metrics.
func ServeHolder(context.Context, net.Listener, *Holder, *slog.Logger) error {
	return errors.New("this ntptool was built without metrics (-tags nometrics)")
}
