// Go (crypto/tls) peers for the sample captures. Standard library only.
//
//	gotls client -addr 127.0.0.1:P -sni server.test -ca root.pem [-max 1.2|1.3] [-min ..]
//	             [-cert c.pem -key k.pem] [-alpn h2] [-keylog file]
//	gotls server -addr 127.0.0.1:P -cert chain.pem -key k.pem [-max ..] [-count N]
//	             [-client-ca ca.pem] [-alpn h2]
//
// Prints one JSON line describing the outcome.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

var versions = map[string]uint16{"1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

func out(m map[string]interface{}) {
	b, _ := json.Marshal(m)
	fmt.Println(string(b))
}

func pool(path string) *x509.CertPool {
	p := x509.NewCertPool()
	pem, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	p.AppendCertsFromPEM(pem)
	return p
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gotls client|server ...")
		os.Exit(2)
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:4470", "address")
	sni := fs.String("sni", "server.test", "server name")
	ca := fs.String("ca", "", "CA bundle (client: server roots; server: see -client-ca)")
	clientCA := fs.String("client-ca", "", "require client certificates from this CA")
	cert := fs.String("cert", "", "certificate chain PEM")
	key := fs.String("key", "", "private key PEM")
	minV := fs.String("min", "1.2", "minimum TLS version")
	maxV := fs.String("max", "1.3", "maximum TLS version")
	alpn := fs.String("alpn", "", "comma-separated ALPN protocols")
	keylog := fs.String("keylog", "", "NSS key log file")
	count := fs.Int("count", 1, "connections to serve")
	fs.Parse(os.Args[2:])

	cfg := &tls.Config{MinVersion: versions[*minV], MaxVersion: versions[*maxV], ServerName: *sni}
	if *alpn != "" {
		cfg.NextProtos = strings.Split(*alpn, ",")
	}
	if *cert != "" {
		c, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			panic(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	if *keylog != "" {
		f, err := os.OpenFile(*keylog, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			panic(err)
		}
		defer f.Close()
		cfg.KeyLogWriter = f
	}

	if mode == "client" {
		if *ca != "" {
			cfg.RootCAs = pool(*ca)
		}
		raw, err := net.DialTimeout("tcp", *addr, 5*time.Second)
		if err != nil {
			out(map[string]interface{}{"mode": "client", "ok": false, "error": err.Error()})
			os.Exit(1)
		}
		c := tls.Client(raw, cfg)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := c.Handshake(); err != nil {
			out(map[string]interface{}{"mode": "client", "ok": false, "error": err.Error()})
			c.Close()
			os.Exit(1)
		}
		st := c.ConnectionState()
		fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", *sni)
		b, _ := io.ReadAll(c)
		out(map[string]interface{}{"mode": "client", "ok": true, "version": fmt.Sprintf("%#04x", st.Version),
			"alpn": st.NegotiatedProtocol, "received": len(b)})
		c.Close()
		return
	}

	if *clientCA != "" {
		cfg.ClientCAs = pool(*clientCA)
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		panic(err)
	}
	for i := 0; i < *count; i++ {
		raw, err := ln.Accept()
		if err != nil {
			panic(err)
		}
		c := tls.Server(raw, cfg)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := c.Handshake(); err != nil {
			out(map[string]interface{}{"mode": "server", "ok": false, "error": err.Error()})
			c.Close()
			continue
		}
		buf := make([]byte, 16384)
		n, _ := c.Read(buf)
		io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\nhello from go")
		st := c.ConnectionState()
		out(map[string]interface{}{"mode": "server", "ok": true, "version": fmt.Sprintf("%#04x", st.Version),
			"alpn": st.NegotiatedProtocol, "read": n})
		c.Close()
	}
}
