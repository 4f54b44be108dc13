package example.hello;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.RestController;

/** One framework route; every request is logged (stdout reaches `unikctl logs` through the serial console). */
@RestController
public class HelloController {
    private static final Logger LOG = LoggerFactory.getLogger(HelloController.class);
    private final String host = hostname();

    /** The kernel's host name, without a name lookup (InetAddress.getLocalHost() would ask DNS for it). */
    private static String hostname() {
        try {
            return Files.readString(Path.of("/proc/sys/kernel/hostname")).trim();
        } catch (IOException e) {
            return "unknown";
        }
    }

    @GetMapping("/hello/{name}")
    public Map<String, String> hello(@PathVariable String name) {
        LOG.info("request method=GET path=/hello/{} status=200", name);
        return Map.of("hello", name, "framework", "spring-boot", "host", host, "java", Runtime.version().toString());
    }
}
