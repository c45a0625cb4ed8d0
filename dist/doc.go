// Package dist holds what operators install besides the binary: the
// systemd units (systemd/), the OpenRC script (openrc/), the auditd rules
// (auditd/), the logrotate configuration (logrotate/), the example
// configuration (ntptool.toml) and the package definitions (pkg/, built
// by "make package" with nfpm). The package has no Go code of its own:
// its tests build the packages and check them with dpkg-deb, rpm,
// lintian and systemd-analyze.
package dist
