package ipam

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
)

// crdPath is the real SpiderIPPool CRD, shipped beside the repository.
var crdPath = filepath.Join("..", "..", "..", "shared", "testdata", "spiderpool", "spiderpool.spidernet.io_spiderippools.yaml")

func loadCRD(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	if _, err := os.Stat(crdPath); err != nil {
		t.Fatalf("the real SpiderIPPool CRD is expected in shared/testdata beside the repository: %v", err)
	}
	objs := loadYAMLObjects(t, crdPath)
	if len(objs) != 1 || objs[0].GetName() != SpiderIPPoolCRDName {
		t.Fatalf("%s holds %d objects, want the %s CRD", crdPath, len(objs), SpiderIPPoolCRDName)
	}
	return objs[0]
}

// poolSchema returns the OpenAPI schema of the version the publisher reads.
func poolSchema(t *testing.T) *spec.Schema {
	t.Helper()
	crd := loadCRD(t)
	if g, _, _ := unstructured.NestedString(crd.Object, "spec", "group"); g != SpiderIPPoolGVR.Group {
		t.Fatalf("CRD group = %q, want %q", g, SpiderIPPoolGVR.Group)
	}
	if p, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural"); p != SpiderIPPoolGVR.Resource {
		t.Fatalf("CRD plural = %q, want %q", p, SpiderIPPoolGVR.Resource)
	}
	if s, _, _ := unstructured.NestedString(crd.Object, "spec", "scope"); s != "Cluster" {
		t.Fatalf("CRD scope = %q, want Cluster", s)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		m := v.(map[string]any)
		if m["name"] != SpiderIPPoolGVR.Version {
			continue
		}
		raw, found, err := unstructured.NestedMap(m, "schema", "openAPIV3Schema")
		if err != nil || !found {
			t.Fatalf("version %s has no schema: %v", SpiderIPPoolGVR.Version, err)
		}
		js, err := json.Marshal(raw)
		if err != nil {
			t.Fatal(err)
		}
		var s spec.Schema
		if err := json.Unmarshal(js, &s); err != nil {
			t.Fatalf("decoding the schema: %v", err)
		}
		return &s
	}
	t.Fatalf("the CRD does not serve %s", SpiderIPPoolGVR.Version)
	return nil
}

func validatePool(s *spec.Schema, u *unstructured.Unstructured) error {
	return validate.AgainstSchema(s, u.UnstructuredContent(), strfmt.Default)
}

// TestFixturesMatchCRDSchema checks that the sample pools the tests use are
// objects the API server would accept.
func TestFixturesMatchCRDSchema(t *testing.T) {
	s := poolSchema(t)
	for _, u := range loadPools(t) {
		if err := validatePool(s, u); err != nil {
			t.Errorf("SpiderIPPool %s does not match the CRD schema: %v", u.GetName(), err)
		}
	}
	// The validator must catch schema violations for the check to mean
	// anything.
	bad := loadPools(t)[0].DeepCopy()
	_ = unstructured.SetNestedField(bad.Object, int64(5), "spec", "ipVersion")
	_ = unstructured.SetNestedField(bad.Object, "yes", "spec", "disable")
	err := validatePool(s, bad)
	if err == nil || !strings.Contains(err.Error(), "ipVersion") || !strings.Contains(err.Error(), "disable") {
		t.Errorf("an invalid pool passed validation: %v", err)
	}
}

// TestDecodedFieldsExistInCRD checks every JSON field the publisher decodes
// against the CRD: a misspelled field name would silently read as empty.
func TestDecodedFieldsExistInCRD(t *testing.T) {
	s := poolSchema(t)
	check := func(path string, typ reflect.Type, props map[string]spec.Schema) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			prop, ok := props[name]
			if !ok {
				t.Errorf("%s.%s is not in the CRD schema", path, name)
				continue
			}
			var want string
			switch k := f.Type.Kind(); {
			case k == reflect.String:
				want = "string"
			case k == reflect.Bool:
				want = "boolean"
			case k == reflect.Slice:
				want = "array"
			case k == reflect.Pointer && f.Type.Elem().Kind() == reflect.Int64:
				want = "integer"
			default:
				t.Fatalf("%s.%s: unexpected Go type %s", path, name, f.Type)
			}
			if !prop.Type.Contains(want) {
				t.Errorf("%s.%s is %v in the CRD, decoded as %s", path, name, prop.Type, want)
			}
		}
	}
	check("spec", reflect.TypeFor[spiderIPPoolSpec](), s.Properties["spec"].Properties)
	check("status", reflect.TypeFor[spiderIPPoolStatus](), s.Properties["status"].Properties)
	if req := s.Properties["spec"].Required; len(req) != 1 || req[0] != "subnet" {
		t.Errorf("spec.required = %v; the decoder treats only subnet as required", req)
	}
}

func TestDecodePool(t *testing.T) {
	pools := loadPools(t)
	byName := make(map[string]*unstructured.Unstructured)
	for _, u := range pools {
		byName[u.GetName()] = u
	}
	p, err := decodePool(byName["pool-b"])
	if err != nil {
		t.Fatal(err)
	}
	if node, ok := p.node(); !ok || node != "node-b" || !p.inUse || p.subnet.String() != "10.244.0.0/16" ||
		len(p.ranges) != 1 || p.ranges[0].String() != "10.244.1.1-10.244.1.255" {
		t.Errorf("pool-b decoded as %+v", p)
	}
	if p, err := decodePool(byName["pool-b-retired"]); err != nil || p.inUse {
		t.Errorf("drained disabled pool: inUse=%v err=%v, want not in use", p.inUse, err)
	}
	if p, err := decodePool(byName["pool-e-draining"]); err != nil || !p.inUse {
		t.Errorf("disabled pool with allocations: inUse=%v err=%v, want in use", p.inUse, err)
	}

	tests := []struct {
		name    string
		mutate  func(u *unstructured.Unstructured)
		wantErr string
	}{
		{"empty subnet", func(u *unstructured.Unstructured) { unstructured.RemoveNestedField(u.Object, "spec", "subnet") }, "spec.subnet is empty"},
		{"bad subnet", func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(u.Object, "10.244.0.0/33", "spec", "subnet")
		}, "spec.subnet"},
		{"ipVersion mismatch", func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(u.Object, int64(6), "spec", "ipVersion")
		}, "spec.ipVersion is 6"},
		{"bad IP", func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedStringSlice(u.Object, []string{"10.244.0.1", "10.244.0.x"}, "spec", "ips")
		}, "spec.ips[1]"},
		{"IP of the other family", func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedStringSlice(u.Object, []string{"fd00::1"}, "spec", "ips")
		}, "outside spec.subnet"},
		{"bad excludeIP", func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedStringSlice(u.Object, []string{"10.244.0.9-10.244.0.1"}, "spec", "excludeIPs")
		}, "spec.excludeIPs[0]"},
		{"wrong field type", func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(u.Object, "node-a", "spec", "nodeName")
		}, "decoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := byName["pool-b"].DeepCopy()
			tt.mutate(u)
			p, err := decodePool(u)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("decodePool = %v, want error containing %q", err, tt.wantErr)
			}
			if p.name != "pool-b" {
				t.Errorf("the name of an invalid pool is lost: %+v", p)
			}
		})
	}
}
