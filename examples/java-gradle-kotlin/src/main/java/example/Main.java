// java-gradle-kotlin: an HTTP server (com.sun.net.httpserver) for unikctl's Gradle path; one log line per request.
package example;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;

public final class Main {
    private Main() {}

    public static void main(String[] args) throws IOException {
        String p = System.getenv("PORT");
        int port = p == null || p.isEmpty() ? 8080 : Integer.parseInt(p);
        HttpServer server = HttpServer.create(new InetSocketAddress("0.0.0.0", port), 64);
        server.createContext("/hello/", exchange -> {
            String path = exchange.getRequestURI().getPath();
            String name = path.substring("/hello/".length()).replace("\"", "");
            byte[] body = ("{\"hello\":\"" + name + "\",\"build\":\"gradle\"}\n").getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().set("Content-Type", "application/json");
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
            System.out.printf("request method=%s path=%s status=200%n", exchange.getRequestMethod(), path);
        });
        server.start();
        System.out.printf("java-gradle-kotlin listening on 0.0.0.0:%d%n", port);
    }
}
