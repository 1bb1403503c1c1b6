package framework

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKI is the throw-away certificate authority of one control plane: it signs
// the API server's serving certificate and the bootstrap admin's client
// certificate, and holds the service-account token signing key. Everything
// lives in files under Dir, a temporary directory.
type PKI struct {
	Dir string

	CACert []byte // PEM
	caCert *x509.Certificate
	caKey  crypto.Signer

	CAFile            string
	ServingCertFile   string
	ServingKeyFile    string
	AdminCertFile     string
	AdminKeyFile      string
	SAKeyFile         string // private key: signs service-account tokens
	SAPublicKeyFile   string // public key: verifies them
	AdminCert         []byte // PEM
	AdminKey          []byte // PEM
	servingCertSerial int64
}

// NewPKI generates a CA, a serving certificate for 127.0.0.1/localhost, an
// admin client certificate in group system:masters and a service-account
// signing key, and writes them into dir. ECDSA P-256 keeps generation fast.
func NewPKI(dir string) (*PKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating PKI directory: %w", err)
	}
	p := &PKI{Dir: dir}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vpc-route-publisher-e2e-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("self-signing CA: %w", err)
	}
	p.caCert, err = x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	p.caKey = caKey
	p.CACert = pemEncode("CERTIFICATE", caDER)
	p.CAFile = filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(p.CAFile, p.CACert, 0o600); err != nil {
		return nil, fmt.Errorf("writing CA certificate: %w", err)
	}

	servingCert, servingKey, err := p.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("issuing serving certificate: %w", err)
	}
	p.ServingCertFile, p.ServingKeyFile = filepath.Join(dir, "apiserver.crt"), filepath.Join(dir, "apiserver.key")
	if err := writePair(p.ServingCertFile, servingCert, p.ServingKeyFile, servingKey); err != nil {
		return nil, err
	}

	p.AdminCert, p.AdminKey, err = p.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "e2e-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("issuing admin client certificate: %w", err)
	}
	p.AdminCertFile, p.AdminKeyFile = filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key")
	if err := writePair(p.AdminCertFile, p.AdminCert, p.AdminKeyFile, p.AdminKey); err != nil {
		return nil, err
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating service-account signing key: %w", err)
	}
	saDER, err := x509.MarshalPKCS8PrivateKey(saKey)
	if err != nil {
		return nil, fmt.Errorf("encoding service-account signing key: %w", err)
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encoding service-account public key: %w", err)
	}
	p.SAKeyFile, p.SAPublicKeyFile = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := writePair(p.SAPublicKeyFile, pemEncode("PUBLIC KEY", saPub), p.SAKeyFile, pemEncode("PRIVATE KEY", saDER)); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *PKI) issue(tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating key: %w", err)
	}
	p.servingCertSerial++
	now := time.Now()
	tmpl.SerialNumber = big.NewInt(1 + p.servingCertSerial)
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("signing certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding key: %w", err)
	}
	return pemEncode("CERTIFICATE", der), pemEncode("PRIVATE KEY", keyDER), nil
}

func writePair(certPath string, cert []byte, keyPath string, key []byte) error {
	if err := os.WriteFile(certPath, cert, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", certPath, err)
	}
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", keyPath, err)
	}
	return nil
}

func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
