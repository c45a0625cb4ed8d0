package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// hostPackages are the Debian packages the harness needs on the host: QEMU,
// the tools that build the initramfs, and the programs (with their shared
// libraries) that are copied into it. chrony is never installed (its
// package would start a daemon disciplining the host's clock): it is
// downloaded and unpacked into the cache, and only its libraries are
// installed.
var hostPackages = []string{
	"qemu-system-x86", "cpio", "xz-utils", "iproute2", "util-linux", "dash",
	"dnsmasq-base", "isc-dhcp-client", "dhcpcd-base",
	// chronyd's shared libraries.
	"libcap2", "libedit2", "libgnutls30", "libnettle8", "libseccomp2",
}

// kernelModules are loaded in the guest (with their dependencies): the
// virtio NIC, and veth for the DHCP lab's namespaces.
var kernelModules = []string{"virtio_pci", "virtio_net", "veth"}

// env is where the harness keeps things and how it logs.
type env struct {
	repo  string // module root
	cache string // .cache/e2e
	logf  func(format string, args ...any)
	// aptUpdated is set once apt-get update has run.
	aptUpdated bool
}

func (e *env) path(p ...string) string { return filepath.Join(append([]string{e.cache}, p...)...) }

func run(dir string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tailLines(string(out), 20))
	}
	return out, nil
}

func installed(pkg string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", pkg).Output()
	return err == nil && strings.Contains(string(out), "ok installed")
}

func (e *env) aptUpdate() error {
	if e.aptUpdated {
		return nil
	}
	e.logf("apt-get update")
	if _, err := run("", "apt-get", "update", "-qq"); err != nil {
		return err
	}
	e.aptUpdated = true
	return nil
}

// ensurePackages installs whatever of hostPackages is missing, and a
// busybox (busybox-static unless a busybox is already there: the two
// conflict, and either serves).
func (e *env) ensurePackages() error {
	var missing []string
	for _, p := range hostPackages {
		if !installed(p) {
			missing = append(missing, p)
		}
	}
	if !installed("busybox") && !installed("busybox-static") {
		missing = append(missing, "busybox-static")
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("packages missing (%s) and not root: install them, or run as root", strings.Join(missing, " "))
	}
	if err := e.aptUpdate(); err != nil {
		return err
	}
	e.logf("apt-get install %s", strings.Join(missing, " "))
	args := append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)
	cmd := exec.Command("apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get install: %v\n%s", err, tailLines(string(out), 20))
	}
	return nil
}

// download fetches a package's .deb into the cache (apt-get download, never
// installed) and unpacks it into dir; it is done once.
func (e *env) download(pkg, dir string) error {
	stamp := filepath.Join(dir, ".unpacked")
	if _, err := os.Stat(stamp); err == nil {
		return nil
	}
	debs := e.path("debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}
	matches, _ := filepath.Glob(filepath.Join(debs, pkg+"_*.deb"))
	if len(matches) == 0 {
		if err := e.aptUpdate(); err != nil {
			return err
		}
		e.logf("apt-get download %s", pkg)
		if _, err := run(debs, "apt-get", "download", "-qq", pkg); err != nil {
			return err
		}
		matches, _ = filepath.Glob(filepath.Join(debs, pkg+"_*.deb"))
		if len(matches) == 0 {
			return fmt.Errorf("apt-get download %s: no .deb", pkg)
		}
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if _, err := run("", "dpkg-deb", "-x", matches[len(matches)-1], dir); err != nil {
		return err
	}
	return os.WriteFile(stamp, nil, 0o644)
}

// kernel is Debian's stock kernel, unpacked.
type kernel struct {
	Version string // "6.1.0-57-amd64"
	Root    string // the unpacked package
	Vmlinux string // uncompressed ELF image, booted through PVH
}

// ensureKernel unpacks the kernel that linux-image-amd64 depends on, and
// extracts the uncompressed vmlinux from its bzImage (QEMU boots an ELF
// vmlinux directly through its PVH note, which saves the ~5 s the guest
// would spend decompressing under TCG).
func (e *env) ensureKernel() (*kernel, error) {
	if err := e.aptUpdateIfNeeded("linux-image-amd64"); err != nil {
		return nil, err
	}
	out, err := run("", "apt-cache", "depends", "linux-image-amd64")
	if err != nil {
		return nil, err
	}
	var pkg string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") && f[1] != "linux-image-amd64" {
			pkg = f[1]
			break
		}
	}
	if pkg == "" {
		return nil, errors.New("apt-cache depends linux-image-amd64: no kernel package")
	}
	k := &kernel{Version: strings.TrimPrefix(pkg, "linux-image-"), Root: e.path("kernel", pkg)}
	if err := e.download(pkg, k.Root); err != nil {
		return nil, err
	}
	k.Vmlinux = filepath.Join(k.Root, "vmlinux")
	if f, err := elf.Open(k.Vmlinux); err == nil {
		f.Close()
		return k, nil
	}
	bz := filepath.Join(k.Root, "boot", "vmlinuz-"+k.Version)
	data, err := os.ReadFile(bz)
	if err != nil {
		return nil, err
	}
	i := bytes.Index(data, []byte("\xfd7zXZ\x00"))
	if i < 0 {
		return nil, fmt.Errorf("%s: no xz payload", bz)
	}
	// xz stops at the end of its stream and complains about the bytes
	// after it (the bzImage's trailer): the output is what counts.
	cmd := exec.Command("xz", "-dc", "--single-stream")
	cmd.Stdin = bytes.NewReader(data[i:])
	var img bytes.Buffer
	cmd.Stdout = &img
	_ = cmd.Run()
	if err := os.WriteFile(k.Vmlinux, img.Bytes(), 0o644); err != nil {
		return nil, err
	}
	f, err := elf.Open(k.Vmlinux)
	if err != nil {
		return nil, fmt.Errorf("extracted vmlinux is not ELF: %w", err)
	}
	f.Close()
	return k, nil
}

func (e *env) aptUpdateIfNeeded(pkg string) error {
	out, _ := exec.Command("apt-cache", "policy", pkg).Output()
	if strings.Contains(string(out), "Candidate:") && !strings.Contains(string(out), "Candidate: (none)") {
		return nil
	}
	return e.aptUpdate()
}

// stage is a directory tree that becomes one initramfs archive.
type stage struct {
	dir string
	// libs already copied, so each is copied once.
	libs map[string]bool
}

func newStage(dir string) (*stage, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &stage{dir: dir, libs: map[string]bool{}}, nil
}

// copyFile copies src to dst (a path inside the stage), following links.
func (s *stage) copyFile(src, dst string, mode fs.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	p := filepath.Join(s.dir, dst)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, mode)
}

func (s *stage) writeFile(dst, content string, mode fs.FileMode) error {
	p := filepath.Join(s.dir, dst)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content), mode)
}

func (s *stage) symlink(target, dst string) error {
	p := filepath.Join(s.dir, dst)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	_ = os.Remove(p)
	return os.Symlink(target, p)
}

// binary copies an executable to dst in the stage, with the shared
// libraries ldd finds for it at their own paths (a static binary has none).
// ldLibraryPath is searched first (for libraries of unpacked packages).
func (s *stage) binary(src, dst, ldLibraryPath string) error {
	if err := s.copyFile(src, dst, 0o755); err != nil {
		return err
	}
	libs, err := lddLibs(src, ldLibraryPath)
	if err != nil {
		return err
	}
	for _, l := range libs {
		if s.libs[l.dst] {
			continue
		}
		if err := s.copyFile(l.src, l.dst, 0o755); err != nil {
			return err
		}
		s.libs[l.dst] = true
	}
	return nil
}

type lib struct{ src, dst string }

// lddLibs lists a binary's shared libraries: "name => /path (addr)" lines
// and the dynamic loader's "/lib64/ld-linux-x86-64.so.2 (addr)".
func lddLibs(bin, ldLibraryPath string) ([]lib, error) {
	cmd := exec.Command("ldd", bin)
	if ldLibraryPath != "" {
		cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+ldLibraryPath)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") || strings.Contains(string(out), "statically linked") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %v: %s", bin, err, out)
	}
	return parseLdd(string(out), bin, ldLibraryPath)
}

func parseLdd(out, bin, ldLibraryPath string) ([]lib, error) {
	var libs []lib
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>" && f[2] == "not":
			return nil, fmt.Errorf("ldd %s: %s not found (a library package is missing)", bin, f[0])
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			dst := f[2]
			// A library found in an unpacked package goes to the
			// system path the binary expects.
			if ldLibraryPath != "" {
				for _, dir := range strings.Split(ldLibraryPath, ":") {
					if rel, ok := strings.CutPrefix(f[2], dir+"/"); ok {
						dst = "/usr/lib/x86_64-linux-gnu/" + rel
					}
				}
			}
			libs = append(libs, lib{src: f[2], dst: dst})
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, lib{src: f[0], dst: f[0]})
		}
	}
	return libs, nil
}

// archive writes the stage as a gzip-compressed newc cpio archive, owned by
// root, which the kernel unpacks as (part of) its initramfs.
func (s *stage) archive(dst string) error {
	var files []string
	err := filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.dir, p)
		files = append(files, rel)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	zw, _ := gzip.NewWriterLevel(out, gzip.BestSpeed)
	cmd := exec.Command("cpio", "-o", "-H", "newc", "-R", "0:0", "--quiet")
	cmd.Dir = s.dir
	cmd.Stdin = strings.NewReader(strings.Join(files, "\n") + "\n")
	cmd.Stdout = zw
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cpio: %v: %s", err, stderr.String())
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return out.Close()
}

// concat writes the archives one after the other: the kernel unpacks
// concatenated compressed cpio archives in order, so the base image is
// built once and each scenario adds its own small archive.
func concat(dst string, parts ...string) error {
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	for _, p := range parts {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return out.Close()
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
