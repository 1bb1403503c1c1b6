package cloud

import (
	"strings"
	"testing"
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

func TestMetadataReplacesARejectedSessionToken(t *testing.T) {
	clock := alisim.NewFakeClock(time.Now())
	ts := startSim(t, alisim.Options{Clock: clock})
	md := newMetadataClient(ts.MetadataURL, 5*time.Second)
	if region, err := md.RegionID(t.Context()); err != nil || region != alisim.DefaultRegion {
		t.Fatalf("RegionID = %q, %v", region, err)
	}
	first := md.token
	// The service forgets the token (here: it expired on the service's
	// clock while the client still believes it valid).
	clock.Advance(7 * time.Hour)
	vpcID, err := md.VPCID(t.Context())
	if err != nil || vpcID != alisim.DefaultVPCID {
		t.Fatalf("VPCID after the token was rejected = %q, %v", vpcID, err)
	}
	if md.token == first {
		t.Error("the rejected session token is still cached")
	}
}

func TestMetadataErrorsNameThePathNotTheBody(t *testing.T) {
	ts := startSim(t, alisim.Options{MetadataRoleName: "no-such-role"})
	md := newMetadataClient(ts.MetadataURL, 5*time.Second)
	_, err := md.RoleCredentials(t.Context(), "no-such-role")
	if err == nil {
		t.Fatal("credentials of a role that does not exist")
	}
	if want := "meta-data/ram/security-credentials/no-such-role"; !containsAll(err.Error(), want, "HTTP 404") {
		t.Errorf("err = %v, want the path and the status", err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
