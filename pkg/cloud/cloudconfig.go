package cloud

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// CloudConfig is the part of the Alibaba cloud-controller-manager's
// cloud-config file the publisher reads, so that a cluster migrating from
// the CCM can reuse its existing ConfigMap or Secret. The file is JSON (YAML
// is accepted too, as the CCM accepts it):
//
//	{"Global": {"accessKeyID": "<base64>", "accessKeySecret": "<base64>",
//	  "region": "cn-chengdu", "vpcid": "vpc-...",
//	  "routeTableIDs": "vtb-a,vtb-b", "clusterID": "..."}}
//
// As in the CCM, accessKeyID and accessKeySecret are base64 encoded.
type CloudConfig struct {
	Region          string
	VPCID           string
	RouteTableIDs   []string
	ClusterID       string
	AccessKeyID     string
	AccessKeySecret string
}

// ccmCloudConfig mirrors the CCM's file layout (field names as in the CCM).
type ccmCloudConfig struct {
	Global struct {
		AccessKeyID     string `json:"accessKeyID"`
		AccessKeySecret string `json:"accessKeySecret"`
		Region          string `json:"region"`
		VpcID           string `json:"vpcid"`
		RouteTableIDs   string `json:"routeTableIDs"`
		ClusterID       string `json:"clusterID"`
	} `json:"Global"`
}

// LoadCloudConfig reads and parses a cloud-config file.
func LoadCloudConfig(path string) (*CloudConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading cloud-config %s: %w", path, err)
	}
	cc, err := ParseCloudConfig(b)
	if err != nil {
		return nil, fmt.Errorf("cloud-config %s: %w", path, err)
	}
	return cc, nil
}

// ParseCloudConfig parses the content of a cloud-config file. Errors never
// quote the file: it holds an AccessKey.
func ParseCloudConfig(data []byte) (*CloudConfig, error) {
	var raw ccmCloudConfig
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, errors.New("not valid JSON or YAML of the form {\"Global\": {...}}")
	}
	g := raw.Global
	cc := &CloudConfig{
		Region:    strings.TrimSpace(g.Region),
		VPCID:     strings.TrimSpace(g.VpcID),
		ClusterID: strings.TrimSpace(g.ClusterID),
	}
	ids, err := splitIDs(g.RouteTableIDs, "vtb-")
	if err != nil {
		return nil, fmt.Errorf("field Global.routeTableIDs: %w", err)
	}
	cc.RouteTableIDs = ids
	if cc.AccessKeyID, err = decodeKey(g.AccessKeyID); err != nil {
		return nil, fmt.Errorf("field Global.accessKeyID: %w", err)
	}
	if cc.AccessKeySecret, err = decodeKey(g.AccessKeySecret); err != nil {
		return nil, fmt.Errorf("field Global.accessKeySecret: %w", err)
	}
	if (cc.AccessKeyID == "") != (cc.AccessKeySecret == "") {
		return nil, errors.New("fields Global.accessKeyID and Global.accessKeySecret must be set together")
	}
	if cc.Region != "" && !validRegion(cc.Region) {
		return nil, fmt.Errorf("field Global.region %q is not a region ID", cc.Region)
	}
	if cc.VPCID != "" && !validResourceID(cc.VPCID, "vpc-") {
		return nil, fmt.Errorf("field Global.vpcid %q is not a VPC ID", cc.VPCID)
	}
	return cc, nil
}

// decodeKey decodes a base64-encoded key. Errors say only that the value is
// not base64, never what it is.
func decodeKey(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return "", errors.New("not base64 encoded (the CCM cloud-config stores keys base64 encoded)")
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New("decodes to an empty value")
	}
	for _, r := range s {
		if r < 0x21 || r > 0x7e {
			return "", errors.New("decodes to a value with characters an AccessKey cannot contain")
		}
	}
	return s, nil
}

// splitIDs splits a comma-separated list of resource IDs with the given
// prefix, dropping blanks and duplicates.
func splitIDs(list, prefix string) ([]string, error) {
	var ids []string
	seen := map[string]bool{}
	for _, id := range strings.Split(list, ",") {
		id = strings.TrimSpace(id)
		if id == "" || seen[id] {
			continue
		}
		if !validResourceID(id, prefix) {
			return nil, fmt.Errorf("%q is not an ID starting with %s", id, prefix)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	return ids, nil
}

func validResourceID(id, prefix string) bool {
	if !strings.HasPrefix(id, prefix) || len(id) == len(prefix) || len(id) > 64 {
		return false
	}
	for _, r := range id[len(prefix):] {
		if !isAlnum(r) {
			return false
		}
	}
	return true
}

// validRegion accepts region IDs such as cn-chengdu or ap-southeast-1: the
// SDK rejects anything else, and the region becomes part of host names.
func validRegion(r string) bool {
	if r == "" || len(r) > 64 || r[0] == '-' || r[len(r)-1] == '-' {
		return false
	}
	for _, c := range r {
		if !isRegionChar(c) {
			return false
		}
	}
	return true
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

func isRegionChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-'
}
