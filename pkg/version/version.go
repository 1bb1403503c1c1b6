// Package version holds the version of the build, stamped by the linker.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release version of the binary. The Makefile sets it with
// -ldflags "-X github.com/vpc-route-publisher/vpc-route-publisher/pkg/version.Version=$(VERSION)";
// a plain go build leaves it "dev".
var Version = "dev"

// Get returns Version or, for a binary installed with go install at a
// tagged module version, that module version.
func Get() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}

// String describes the build in one line: name, version, Go version and
// platform.
func String(name string) string {
	return fmt.Sprintf("%s %s (%s, %s/%s)", name, Get(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
