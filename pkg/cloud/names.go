package cloud

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// maxEntryNameLen is the VPC API's limit on RouteEntryName.
const maxEntryNameLen = 128

// entryName derives a RouteEntryName from a node name. The API accepts 1–128
// characters that start with a letter and contain only letters, digits,
// '.', '-' and '_'. Node names are DNS subdomains (up to 253 characters), so
// the result is deterministic: invalid characters become '-', a name not
// starting with a letter gets the prefix "node-", and a name that is still
// too long is cut and suffixed with a hash of the full node name so that
// distinct nodes keep distinct entry names. The name is informative only:
// ownership is read from the Description marker.
func entryName(node string) string {
	var b strings.Builder
	for _, r := range node {
		switch {
		case isAlnum(r), r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := b.String()
	if name == "" || !isLetter(name[0]) {
		name = "node-" + name
	}
	if len(name) > maxEntryNameLen {
		sum := sha256.Sum256([]byte(node))
		suffix := "-" + hex.EncodeToString(sum[:4])
		name = name[:maxEntryNameLen-len(suffix)] + suffix
	}
	return name
}

func isLetter(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
