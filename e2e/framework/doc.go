// Package framework runs the real parts of an end-to-end installation on
// loopback, as child processes in temporary directories: etcd and
// kube-apiserver built by hack/tools (RBAC on, service-account token
// signing, a throw-away PKI), the alisim simulator and publisher replicas.
// It applies the RBAC shipped in deploy/base and hands the publisher a
// TokenRequest token of that ServiceAccount, so a passing test proves the
// shipped RBAC is sufficient.
//
// The e2e suite (build tag e2e), the demo (e2e/cmd/demo) and the benchmark
// build on it. Every process is stopped by PID (SIGTERM, then SIGKILL after
// a deadline), and is killed by the kernel should the harness itself die.
package framework
