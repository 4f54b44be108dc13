// java-http: a tiny HTTP server for unikctl's java pack. It logs one line per request to stdout,
// which reaches `unikctl logs` through the VM's serial console.
package example;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

public final class Main {
    private Main() {}

    private static String env(String name, String fallback) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? fallback : v;
    }

    /** The kernel's host name, without a name lookup (InetAddress.getLocalHost() would ask DNS for it). */
    private static String hostname() {
        try {
            return Files.readString(Path.of("/proc/sys/kernel/hostname")).trim();
        } catch (IOException e) {
            return env("HOSTNAME", "unknown");
        }
    }

    public static void main(String[] args) throws IOException {
        int port = Integer.parseInt(env("PORT", "8080"));
        String greeting = env("GREETING", "hello from a unikctl VM");
        String host = hostname();
        // the guest has no IPv6: bind the IPv4 wildcard explicitly
        HttpServer server = HttpServer.create(new InetSocketAddress("0.0.0.0", port), 64);
        server.createContext("/", exchange -> {
            long start = System.nanoTime();
            String path = exchange.getRequestURI().getPath();
            byte[] body = String.format("%s (host %s, path %s, java %s)%n", greeting, host, path, Runtime.version())
                .getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
            System.out.printf("request method=%s path=%s remote=%s duration=%dus%n", exchange.getRequestMethod(), path,
                exchange.getRemoteAddress().getAddress().getHostAddress(), (System.nanoTime() - start) / 1000);
        });
        server.createContext("/exit", exchange -> {
            byte[] body = "bye\n".getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
            new Thread(() -> {
                try {
                    Thread.sleep(100);
                } catch (InterruptedException ignored) {
                    // exiting anyway
                }
                System.exit(0);
            }).start();
        });
        server.start();
        long startedMs = ProcessHandle.current().info().startInstant()
            .map(t -> System.currentTimeMillis() - t.toEpochMilli()).orElse(-1L);
        System.out.println("java-http listening on 0.0.0.0:" + port + " (JVM start to listening: " + startedMs + " ms)");
    }
}
