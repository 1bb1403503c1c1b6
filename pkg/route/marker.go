package route

import (
	"fmt"
	"strings"
)

// ManagedBy is the value of the managed-by field of the ownership marker.
const ManagedBy = "vpc-route-publisher"

// Marker is the ownership marker stamped on every entry the publisher writes.
// It lives in the entry's Description (at most 256 characters) as
//
//	managed-by=vpc-route-publisher;cluster=<cluster-id>;node=<node>
//
// so that an entry can be attributed to a cluster and a node from the cloud
// alone, across restarts and failovers. An entry without a marker naming our
// cluster is never modified or deleted.
type Marker struct {
	Cluster string
	Node    string
}

// MaxDescriptionLen is the VPC API's limit on an entry's Description.
const MaxDescriptionLen = 256

// String renders the marker as stored in the entry's Description.
func (m Marker) String() string {
	return "managed-by=" + ManagedBy + ";cluster=" + m.Cluster + ";node=" + m.Node
}

// Validate reports whether the marker can be stored and read back unchanged.
func (m Marker) Validate() error {
	for name, v := range map[string]string{"cluster": m.Cluster, "node": m.Node} {
		if v == "" {
			return fmt.Errorf("ownership marker: %s must not be empty", name)
		}
		if strings.ContainsAny(v, ";=") {
			return fmt.Errorf("ownership marker: %s %q must not contain ';' or '='", name, v)
		}
	}
	if n := len(m.String()); n > MaxDescriptionLen {
		return fmt.Errorf("ownership marker is %d characters, longer than the %d the VPC API accepts", n, MaxDescriptionLen)
	}
	return nil
}

// ParseMarker reads a marker from an entry's Description. It returns false
// when the description is not a marker written by vpc-route-publisher.
func ParseMarker(description string) (Marker, bool) {
	var m Marker
	var managed bool
	for _, field := range strings.Split(description, ";") {
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			return Marker{}, false
		}
		switch k {
		case "managed-by":
			managed = v == ManagedBy
		case "cluster":
			m.Cluster = v
		case "node":
			m.Node = v
		}
	}
	if !managed || m.Cluster == "" {
		return Marker{}, false
	}
	return m, true
}
