package cloud

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseProviderID(t *testing.T) {
	for _, tc := range []struct {
		in         string
		region, id string
		ok         bool
	}{
		{"cn-chengdu.i-2vcxxr", "cn-chengdu", "i-2vcxxr", true},
		{"alicloud://cn-chengdu.i-2vcxxr", "cn-chengdu", "i-2vcxxr", true},
		{"ap-southeast-1.i-t4n0123456789abcdef", "ap-southeast-1", "i-t4n0123456789abcdef", true},
		{"", "", "", false},
		{"i-2vcxxr", "", "", false},
		{"cn-chengdu.", "", "", false},
		{"cn-chengdu.i-", "", "", false},
		{"aws:///us-east-1a/i-0abc", "", "", false},
		{"cn-chengdu.i-2vc.xxr", "", "", false},
		{"alicloud://", "", "", false},
		{"CN_CHENGDU.i-2vcxxr", "", "", false},
		{"cn-chengdu.vm-2vcxxr", "", "", false},
	} {
		region, id, ok := ParseProviderID(tc.in)
		if region != tc.region || id != tc.id || ok != tc.ok {
			t.Errorf("ParseProviderID(%q) = %q, %q, %v; want %q, %q, %v", tc.in, region, id, ok, tc.region, tc.id, tc.ok)
		}
	}
}

func FuzzParseProviderID(f *testing.F) {
	for _, seed := range []string{
		"cn-chengdu.i-2vcxxr", "alicloud://cn-chengdu.i-2vcxxr", "", ".", "alicloud://.", "cn-chengdu.i-", "a.i-b.c",
		"alicloud://alicloud://cn-chengdu.i-x", "cn-hangzhou.i-bp1bcl00jhxr754tw8vx",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		region, id, ok := ParseProviderID(in)
		if !ok {
			if region != "" || id != "" {
				t.Fatalf("not ok but returned %q %q", region, id)
			}
			return
		}
		if !validRegion(region) || !strings.HasPrefix(id, "i-") || strings.ContainsAny(id, "./:") {
			t.Fatalf("ParseProviderID(%q) accepted region %q id %q", in, region, id)
		}
		// The two accepted forms round-trip.
		if in != region+"."+id && in != "alicloud://"+region+"."+id {
			t.Fatalf("ParseProviderID(%q) = %q, %q does not reproduce the input", in, region, id)
		}
	})
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseCloudConfig(t *testing.T) {
	cc, err := ParseCloudConfig([]byte(`{"Global": {
		"accessKeyID": "` + b64("LTAIabc") + `", "accessKeySecret": "` + b64("s3cr3t\n") + `",
		"region": "cn-chengdu", "vpcid": "vpc-2vc0000000000000001",
		"routeTableIDs": "vtb-a, vtb-b,,vtb-a", "clusterID": "c0ffee",
		"vswitchid": "vsw-ignored", "serviceBackendType": "ignored"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if cc.AccessKeyID != "LTAIabc" || cc.AccessKeySecret != "s3cr3t" || cc.Region != "cn-chengdu" || cc.VPCID != "vpc-2vc0000000000000001" ||
		cc.ClusterID != "c0ffee" || !slices.Equal(cc.RouteTableIDs, []string{"vtb-a", "vtb-b"}) {
		t.Errorf("parsed %+v", cc)
	}

	yamlCC, err := ParseCloudConfig([]byte("Global:\n  region: cn-beijing\n  vpcid: vpc-x1\n"))
	if err != nil || yamlCC.Region != "cn-beijing" || yamlCC.VPCID != "vpc-x1" || yamlCC.AccessKeyID != "" {
		t.Errorf("YAML form: %+v, %v", yamlCC, err)
	}

	for name, bad := range map[string]string{
		"not base64":        `{"Global": {"accessKeyID": "LTAI+plain!", "accessKeySecret": "` + b64("x") + `"}}`,
		"secret without id": `{"Global": {"accessKeySecret": "` + b64("x") + `"}}`,
		"bad table":         `{"Global": {"routeTableIDs": "rtb-123"}}`,
		"bad region":        `{"Global": {"region": "cn chengdu"}}`,
		"bad vpc":           `{"Global": {"vpcid": "subnet-1"}}`,
		"not json":          `{"Global": [`,
		"binary key":        `{"Global": {"accessKeyID": "` + b64("a\x00b") + `", "accessKeySecret": "` + b64("x") + `"}}`,
	} {
		if _, err := ParseCloudConfig([]byte(bad)); err == nil {
			t.Errorf("%s: parsed without error", name)
		} else if strings.Contains(err.Error(), "LTAI+plain!") {
			t.Errorf("%s: error quotes the key: %v", name, err)
		}
	}
}

func FuzzParseCloudConfig(f *testing.F) {
	for _, seed := range []string{
		`{"Global": {"accessKeyID": "TFRBSWFiYw==", "accessKeySecret": "czNjcjN0", "region": "cn-chengdu", "vpcid": "vpc-1", "routeTableIDs": "vtb-a,vtb-b", "clusterID": "c"}}`,
		`{"Global": {}}`,
		`{}`,
		`Global:\n  region: cn-chengdu\n`,
		`{"Global": {"routeTableIDs": ",,, vtb-x ,"}}`,
		`{"Global": {"accessKeyID": "%%%"}}`,
		`null`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cc, err := ParseCloudConfig(data)
		if err != nil {
			if cc != nil {
				t.Fatal("error with a non-nil config")
			}
			return
		}
		if (cc.AccessKeyID == "") != (cc.AccessKeySecret == "") {
			t.Fatalf("half an AccessKey accepted: %q / %q", cc.AccessKeyID, cc.AccessKeySecret)
		}
		for _, k := range []string{cc.AccessKeyID, cc.AccessKeySecret} {
			if !utf8.ValidString(k) || strings.ContainsAny(k, " \t\r\n") {
				t.Fatalf("unusable key %q accepted", k)
			}
		}
		if cc.Region != "" && !validRegion(cc.Region) {
			t.Fatalf("region %q accepted", cc.Region)
		}
		seen := map[string]bool{}
		for _, id := range cc.RouteTableIDs {
			if !validResourceID(id, "vtb-") || seen[id] {
				t.Fatalf("route table IDs %q accepted", cc.RouteTableIDs)
			}
			seen[id] = true
		}
	})
}

func TestEntryName(t *testing.T) {
	long := strings.Repeat("a", 200)
	longOther := strings.Repeat("a", 199) + "b"
	for _, tc := range []struct{ node, want string }{
		{"cn-chengdu.i-2vcxxr", "cn-chengdu.i-2vcxxr"},
		{"Node_1", "Node_1"},
		{"10.0.0.1", "node-10.0.0.1"},
		{"", "node-"},
		{"a:b/c", "a-b-c"},
		{"ünïcode", "-n-code"},
	} {
		got := entryName(tc.node)
		if tc.want == "-n-code" {
			tc.want = "node--n-code" // non-ASCII letters are replaced, then the name must start with a letter
		}
		if got != tc.want {
			t.Errorf("entryName(%q) = %q, want %q", tc.node, got, tc.want)
		}
	}
	a, b := entryName(long), entryName(longOther)
	if len(a) != maxEntryNameLen || len(b) != maxEntryNameLen || a == b || a != entryName(long) {
		t.Errorf("long names: %q (%d), %q (%d): want distinct, deterministic, %d characters", a, len(a), b, len(b), maxEntryNameLen)
	}
}

func FuzzEntryName(f *testing.F) {
	for _, seed := range []string{"cn-chengdu.i-2vcxxr", "", "1", strings.Repeat("x", 300), "http://x", "é"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, node string) {
		name := entryName(node)
		if len(name) < 1 || len(name) > maxEntryNameLen || !isLetter(name[0]) {
			t.Fatalf("entryName(%q) = %q breaks the length or first-letter rule", node, name)
		}
		for _, r := range name {
			if !isAlnum(r) && r != '.' && r != '-' && r != '_' {
				t.Fatalf("entryName(%q) = %q contains %q", node, name, r)
			}
		}
		if strings.HasPrefix(name, "http://") || strings.HasPrefix(name, "https://") {
			t.Fatalf("entryName(%q) = %q starts with a URL scheme", node, name)
		}
	})
}
