// The app module of java-maven-multimodule: an HTTP server whose answers come from the greeting-lib module.
// Each request is logged to stdout, which reaches `unikctl logs` through the VM's serial console.
package example.app;

import com.sun.net.httpserver.HttpServer;
import example.greeting.Greeter;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

public final class Main {
    private Main() {}

    public static void main(String[] args) throws IOException {
        String p = System.getenv("PORT");
        int port = p == null || p.isEmpty() ? 8080 : Integer.parseInt(p);
        String host = Files.readString(Path.of("/proc/sys/kernel/hostname")).trim();
        // the guest has no IPv6: bind the IPv4 wildcard explicitly
        HttpServer server = HttpServer.create(new InetSocketAddress("0.0.0.0", port), 64);
        server.createContext("/hello/", exchange -> {
            String path = exchange.getRequestURI().getPath();
            byte[] body = Greeter.greet(path.substring("/hello/".length()), host).getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().set("Content-Type", "application/json");
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
            System.out.printf("request method=%s path=%s status=200%n", exchange.getRequestMethod(), path);
        });
        server.start();
        System.out.printf("java-maven-multimodule listening on 0.0.0.0:%d%n", port);
    }
}
