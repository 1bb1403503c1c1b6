package alisim

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestServer is a simulator serving its three handlers on loopback
// listeners for the duration of a test.
type TestServer struct {
	// Sim is the simulator, for in-process inspection and mutation.
	Sim *Simulator
	// APIEndpoint is the host:port of the cloud API, the value to give the
	// SDK as the client's Domain (with Scheme HTTP).
	APIEndpoint string
	// MetadataURL and AdminURL are the base URLs of the metadata service
	// and the admin API (http://127.0.0.1:PORT).
	MetadataURL string
	AdminURL    string
}

// StartForTest starts a simulator with opts on 127.0.0.1 and stops it when
// the test ends. It fails the test if the simulator cannot be built.
func StartForTest(t testing.TB, opts Options) *TestServer {
	t.Helper()
	sim, err := New(opts)
	if err != nil {
		t.Fatalf("alisim: %v", err)
	}
	start := func(h http.Handler) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	api := start(sim.APIHandler())
	return &TestServer{
		Sim:         sim,
		APIEndpoint: strings.TrimPrefix(api, "http://"),
		MetadataURL: start(sim.MetadataHandler()),
		AdminURL:    start(sim.AdminHandler()),
	}
}
