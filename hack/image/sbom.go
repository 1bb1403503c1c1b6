package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"runtime/debug"
	"strings"
	"time"
)

// The SBOM is SPDX 2.3 JSON, one document per platform, written beside the
// archive. Its Go modules are read from the build information the linker
// embeds in the binary (debug/buildinfo, what `go version -m` prints): the
// modules actually linked, at the versions actually linked, after
// replacements — not what go.mod asks for. The image, the binary, the Go
// standard library and the CA bundle's Debian package are packages too.

type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	Name                  string         `json:"name"`
	SPDXID                string         `json:"SPDXID"`
	VersionInfo           string         `json:"versionInfo,omitempty"`
	DownloadLocation      string         `json:"downloadLocation"`
	FilesAnalyzed         bool           `json:"filesAnalyzed"`
	LicenseConcluded      string         `json:"licenseConcluded"`
	LicenseDeclared       string         `json:"licenseDeclared"`
	CopyrightText         string         `json:"copyrightText"`
	PrimaryPackagePurpose string         `json:"primaryPackagePurpose,omitempty"`
	Checksums             []spdxChecksum `json:"checksums,omitempty"`
	ExternalRefs          []spdxExtRef   `json:"externalRefs,omitempty"`
	Comment               string         `json:"comment,omitempty"`
}

type spdxChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type spdxExtRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

const noAssertion = "NOASSERTION"

func writeSBOM(path string, cfg BuildConfig, v variant, manifestDigest string, caPEM []byte) error {
	bin, err := os.ReadFile(v.BinaryPath)
	if err != nil {
		return fmt.Errorf("reading %s: %w", v.BinaryPath, err)
	}
	bi, err := buildinfo.ReadFile(v.BinaryPath)
	if err != nil {
		return fmt.Errorf("reading the build information of %s: %w", v.BinaryPath, err)
	}
	doc := sbom(cfg, v.Platform, manifestDigest, bin, bi, caPEM)
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the SBOM: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the SBOM: %w", err)
	}
	return nil
}

// sbom is pure, so that what the document says can be tested on its own.
func sbom(cfg BuildConfig, p Platform, manifestDigest string, bin []byte, bi *debug.BuildInfo, caPEM []byte) spdxDocument {
	algo, hexDigest, _ := strings.Cut(manifestDigest, ":")
	doc := spdxDocument{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              fmt.Sprintf("%s-%s-%s-%s", cfg.Name, cfg.Version, p.OS, p.Arch),
		DocumentNamespace: fmt.Sprintf("%s/spdx/%s-%s-%s-%s", strings.TrimSuffix(cfg.Source, "/"), cfg.Name, cfg.Version, p.dir(), hexDigest),
		CreationInfo: spdxCreationInfo{
			Created:  cfg.Created.UTC().Format(time.RFC3339),
			Creators: []string{"Tool: vpc-route-publisher-hack-image", "Organization: vpc-route-publisher"},
		},
	}
	add := func(pkg spdxPackage, rel spdxRelationship) {
		pkg.DownloadLocation, pkg.CopyrightText = noAssertion, noAssertion
		if pkg.LicenseConcluded == "" {
			pkg.LicenseConcluded = noAssertion
		}
		if pkg.LicenseDeclared == "" {
			pkg.LicenseDeclared = noAssertion
		}
		doc.Packages = append(doc.Packages, pkg)
		doc.Relationships = append(doc.Relationships, rel)
	}

	const imageID, binaryID, caID, stdlibID = "SPDXRef-Package-image", "SPDXRef-Package-binary", "SPDXRef-Package-ca-bundle", "SPDXRef-Package-go-stdlib"
	add(spdxPackage{
		Name: cfg.Name, SPDXID: imageID, VersionInfo: cfg.Version, PrimaryPackagePurpose: "CONTAINER",
		LicenseDeclared: cfg.Licenses,
		Checksums:       []spdxChecksum{{Algorithm: strings.ToUpper(algo), ChecksumValue: hexDigest}},
		ExternalRefs: []spdxExtRef{purl(fmt.Sprintf("pkg:oci/%s@%s?arch=%s&os=%s",
			cfg.Name, url.QueryEscape(manifestDigest), p.Arch, p.OS))},
		Comment: "OCI image manifest " + manifestDigest + " for " + p.String() + ", revision " + cfg.Revision,
	}, spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", imageID})
	add(spdxPackage{
		Name: bi.Main.Path, SPDXID: binaryID, VersionInfo: cfg.Version, PrimaryPackagePurpose: "APPLICATION",
		LicenseDeclared: cfg.Licenses,
		Checksums:       []spdxChecksum{sha256Sum(bin)},
		ExternalRefs:    []spdxExtRef{purl(golangPURL(bi.Main.Path, cfg.Version))},
		Comment:         BinaryPath + " built with " + bi.GoVersion + ", " + buildSettings(bi),
	}, spdxRelationship{imageID, "CONTAINS", binaryID})
	add(spdxPackage{
		Name: cfg.CABundle.Package, SPDXID: caID, VersionInfo: cfg.CABundle.Version,
		PrimaryPackagePurpose: "FILE",
		Checksums:             []spdxChecksum{sha256Sum(caPEM)},
		ExternalRefs:          []spdxExtRef{purl(fmt.Sprintf("pkg:deb/debian/%s@%s?arch=all", cfg.CABundle.Package, url.PathEscape(cfg.CABundle.Version)))},
		Comment:               CABundlePath + ", the CA bundle of the build machine's Debian package",
	}, spdxRelationship{imageID, "CONTAINS", caID})
	add(spdxPackage{
		Name: "stdlib", SPDXID: stdlibID, VersionInfo: bi.GoVersion,
		PrimaryPackagePurpose: "LIBRARY", LicenseDeclared: "BSD-3-Clause",
		ExternalRefs: []spdxExtRef{purl("pkg:golang/stdlib@" + url.PathEscape(bi.GoVersion))},
	}, spdxRelationship{binaryID, "DEPENDS_ON", stdlibID})
	for i, m := range bi.Deps {
		mod, comment := m, ""
		if m.Replace != nil {
			mod = m.Replace
			comment = "replaces " + m.Path + "@" + m.Version
		}
		id := fmt.Sprintf("SPDXRef-Package-go-module-%d-%s", i, spdxIDUnsafe.ReplaceAllString(mod.Path, "-"))
		if mod.Sum != "" {
			comment = strings.TrimPrefix(comment+"; go.sum "+mod.Sum, "; ")
		}
		add(spdxPackage{
			Name: mod.Path, SPDXID: id, VersionInfo: mod.Version, PrimaryPackagePurpose: "LIBRARY",
			ExternalRefs: []spdxExtRef{purl(golangPURL(mod.Path, mod.Version))},
			Comment:      comment,
		}, spdxRelationship{binaryID, "DEPENDS_ON", id})
	}
	return doc
}

var spdxIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

func purl(locator string) spdxExtRef {
	return spdxExtRef{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl", ReferenceLocator: locator}
}

// golangPURL is the package URL of a Go module: each path segment and the
// version percent-encoded ("+incompatible" becomes "%2Bincompatible").
func golangPURL(modPath, version string) string {
	segs := strings.Split(modPath, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "pkg:golang/" + strings.Join(segs, "/") + "@" + strings.ReplaceAll(url.PathEscape(version), "+", "%2B")
}

func sha256Sum(b []byte) spdxChecksum {
	sum := sha256.Sum256(b)
	return spdxChecksum{Algorithm: "SHA256", ChecksumValue: hex.EncodeToString(sum[:])}
}

// buildSettings lists the settings that decide what the binary is.
func buildSettings(bi *debug.BuildInfo) string {
	var parts []string
	for _, s := range bi.Settings {
		switch s.Key {
		case "GOOS", "GOARCH", "CGO_ENABLED", "-trimpath", "-ldflags", "GOAMD64", "GOARM64":
			parts = append(parts, s.Key+"="+s.Value)
		}
	}
	return strings.Join(parts, " ")
}
