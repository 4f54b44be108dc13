package example.greeting;

/** The library module: what the app answers. */
public final class Greeter {
    private Greeter() {}

    public static String greet(String name, String host) {
        return String.format("{\"hello\":\"%s\",\"module\":\"greeting-lib\",\"host\":\"%s\"}%n", name.replace("\"", ""), host);
    }
}
