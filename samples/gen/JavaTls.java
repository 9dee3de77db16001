// Java (JSSE) TLS peers for the sample captures.
//
//   java JavaTls client HOST PORT SNI TRUSTSTORE.p12 PROTOCOL [KEYSTORE.p12]
//   java JavaTls server HOST PORT KEYSTORE.p12 PROTOCOLS COUNT [CLIENT_TRUSTSTORE.p12]
// PROTOCOL(S): TLSv1.2, TLSv1.3 or "TLSv1.3,TLSv1.2". Store passwords: "changeit".
// The client checks the host name (endpoint identification "HTTPS") against SNI. When SNI is an IP
// literal, no server_name extension is sent and the IP is checked against the IP SANs.
// Prints one JSON-ish line describing the outcome.

import java.io.*;
import java.net.*;
import java.security.KeyStore;
import java.util.List;
import javax.net.ssl.*;

public class JavaTls {
    static final char[] PW = "changeit".toCharArray();

    static KeyStore load(String path) throws Exception {
        KeyStore ks = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(path)) { ks.load(in, PW); }
        return ks;
    }

    static SSLContext context(String keystore, String truststore) throws Exception {
        KeyManager[] km = null;
        TrustManager[] tm = null;
        if (keystore != null) {
            KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(load(keystore), PW);
            km = kmf.getKeyManagers();
        }
        if (truststore != null) {
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(load(truststore));
            tm = tmf.getTrustManagers();
        }
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(km, tm, null);
        return ctx;
    }

    public static void main(String[] a) throws Exception {
        if (a[0].equals("client")) client(a); else server(a);
    }

    static void client(String[] a) throws Exception {
        String host = a[1], sni = a[3];
        int port = Integer.parseInt(a[2]);
        SSLContext ctx = context(a.length > 6 ? a[6] : null, a[4]);
        Socket plain = new Socket();
        plain.connect(new InetSocketAddress(host, port), 5000);
        SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket(plain, sni, port, true);
        SSLParameters p = s.getSSLParameters();
        p.setProtocols(a[5].split(","));
        boolean ipLiteral = sni.matches("[0-9.]+") || sni.contains(":");
        p.setServerNames(ipLiteral ? List.of() : List.of(new SNIHostName(sni)));
        p.setEndpointIdentificationAlgorithm("HTTPS");
        s.setSSLParameters(p);
        s.setSoTimeout(5000);
        try {
            s.startHandshake();
            OutputStream o = s.getOutputStream();
            o.write(("GET / HTTP/1.0\r\nHost: " + sni + "\r\n\r\n").getBytes());
            o.flush();
            InputStream in = s.getInputStream();
            byte[] buf = new byte[16384];
            int n, got = 0;
            try { while ((n = in.read(buf)) > 0) got += n; } catch (SocketTimeoutException e) { }
            System.out.println("{\"mode\":\"client\",\"ok\":true,\"version\":\"" + s.getSession().getProtocol() + "\",\"received\":" + got + "}");
            s.close();
        } catch (IOException e) {
            System.out.println("{\"mode\":\"client\",\"ok\":false,\"error\":\"" + e.toString().replace("\"", "'") + "\"}");
            s.close();
            System.exit(1);
        }
    }

    static void server(String[] a) throws Exception {
        String host = a[1];
        int port = Integer.parseInt(a[2]);
        int count = Integer.parseInt(a[5]);
        SSLContext ctx = context(a[3], a.length > 6 ? a[6] : null);
        SSLServerSocket ss = (SSLServerSocket) ctx.getServerSocketFactory()
                .createServerSocket(port, 8, InetAddress.getByName(host));
        ss.setEnabledProtocols(a[4].split(","));
        if (a.length > 6) ss.setNeedClientAuth(true);
        for (int i = 0; i < count; i++) {
            try (SSLSocket s = (SSLSocket) ss.accept()) {
                s.setSoTimeout(5000);
                s.startHandshake();
                InputStream in = s.getInputStream();
                byte[] buf = new byte[16384];
                int n = in.read(buf);
                OutputStream o = s.getOutputStream();
                o.write("HTTP/1.0 200 OK\r\nContent-Length: 15\r\n\r\nhello from java".getBytes());
                o.flush();
                System.out.println("{\"mode\":\"server\",\"ok\":true,\"version\":\"" + s.getSession().getProtocol() + "\",\"read\":" + n + "}");
            } catch (IOException e) {
                System.out.println("{\"mode\":\"server\",\"ok\":false,\"error\":\"" + e.toString().replace("\"", "'") + "\"}");
            }
        }
        ss.close();
    }
}
