package cluster

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

// certLifetime covers any test run; certificates are made fresh per cluster.
const certLifetime = 24 * time.Hour

// PKI is the key material of one cluster, as PEM, plus the files the
// processes read it from.
type PKI struct {
	CACert      []byte // cluster CA: signs the serving and client certificates
	ServingCert []byte // kube-apiserver's serving certificate
	ServingKey  []byte
	AdminCert   []byte // client certificate in group system:masters
	AdminKey    []byte
	SAKey       []byte // service-account token signing key (private)
	SAPublicKey []byte // its public half, which kube-apiserver verifies tokens with

	Files PKIFiles
}

// PKIFiles are the paths WritePKI wrote.
type PKIFiles struct {
	CACert, ServingCert, ServingKey, AdminCert, AdminKey, SAKey, SAPublicKey string
}

// keyPair is a generated key and its certificate.
type keyPair struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	der  []byte
}

// NewPKI generates a CA, a serving certificate for the given IPs and DNS
// names, an admin client certificate (O=system:masters) and a
// service-account signing key. ECDSA P-256 keeps generation instant.
func NewPKI(ips []net.IP, dnsNames []string) (*PKI, error) {
	ca, err := newCA()
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	serving, err := newLeaf(ca, pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth, ips, dnsNames)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	admin, err := newLeaf(ca, pkix.Name{CommonName: "kproxy-test-admin", Organization: []string{"system:masters"}},
		x509.ExtKeyUsageClientAuth, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("admin client certificate: %w", err)
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("service-account key: %w", err)
	}
	p := &PKI{CACert: certPEM(ca.der), ServingCert: certPEM(serving.der), AdminCert: certPEM(admin.der)}
	for _, k := range []struct {
		dst *[]byte
		key crypto.Signer
	}{{&p.ServingKey, serving.key}, {&p.AdminKey, admin.key}, {&p.SAKey, saKey}} {
		if *k.dst, err = keyPEM(k.key); err != nil {
			return nil, err
		}
	}
	pub, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, fmt.Errorf("marshal service-account public key: %w", err)
	}
	p.SAPublicKey = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	return p, nil
}

func newCA() (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl, err := certTemplate(pkix.Name{CommonName: "kproxy-test-ca"})
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign
	return sign(tmpl, tmpl, key, key)
}

func newLeaf(ca *keyPair, subject pkix.Name, usage x509.ExtKeyUsage, ips []net.IP, dns []string) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl, err := certTemplate(subject)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	tmpl.BasicConstraintsValid = true
	tmpl.IPAddresses = ips
	tmpl.DNSNames = dns
	return sign(tmpl, ca.cert, key, ca.key)
}

func certTemplate(subject pkix.Name) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    now.Add(-time.Hour), // tolerate small clock differences
		NotAfter:     now.Add(certLifetime),
	}, nil
}

func sign(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, parentKey crypto.Signer) (*keyPair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &keyPair{key: key, cert: cert, der: der}, nil
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Write stores the PEM files in dir (mode 0600) and records their paths.
func (p *PKI) Write(dir string) error {
	files := PKIFiles{
		CACert:      filepath.Join(dir, "ca.crt"),
		ServingCert: filepath.Join(dir, "apiserver.crt"),
		ServingKey:  filepath.Join(dir, "apiserver.key"),
		AdminCert:   filepath.Join(dir, "admin.crt"),
		AdminKey:    filepath.Join(dir, "admin.key"),
		SAKey:       filepath.Join(dir, "sa.key"),
		SAPublicKey: filepath.Join(dir, "sa.pub"),
	}
	for path, data := range map[string][]byte{
		files.CACert: p.CACert, files.ServingCert: p.ServingCert, files.ServingKey: p.ServingKey,
		files.AdminCert: p.AdminCert, files.AdminKey: p.AdminKey, files.SAKey: p.SAKey, files.SAPublicKey: p.SAPublicKey,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	p.Files = files
	return nil
}
