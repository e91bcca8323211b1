package dev.valve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The command line's parsing: flags over environment over defaults, and clear refusals. */
class MainTest {
    @Test
    void valveDefaultsApplyWhenNothingIsGiven() {
        Map<String, String> values = Main.parse(new String[0], Map.of());
        assertEquals("127.0.0.1", values.get("host"));
        assertEquals("3000", values.get("port"));
        assertEquals("plumber.R", values.get("file"));
        assertEquals("3", values.get("n-max"));
        assertEquals("1", values.get("n-min"));
        assertEquals("10", values.get("check-unused"));
        assertEquals("300", values.get("max-age"));
    }

    @Test
    void flagsBeatEnvironmentWhichBeatsPortWhichBeatsDefaults() {
        Map<String, String> env = Map.of("VALVE_N_MAX", "7", "VALVE_PORT", "8001", "PORT", "9000", "VALVE_HOST", "0.0.0.0");
        Map<String, String> values = Main.parse(new String[] {"-n", "5", "--max-age=60"}, env);
        assertEquals("5", values.get("n-max"));
        assertEquals("60", values.get("max-age"));
        assertEquals("8001", values.get("port"));
        assertEquals("0.0.0.0", values.get("host"));
        assertEquals("9000", Main.parse(new String[0], Map.of("PORT", "9000")).get("port"));
    }

    @Test
    void faucetsShapeAndShortFlagsAreAccepted() {
        Map<String, String> values = Main.parse(new String[] {"local", "--dir", "/srv/api", "-h", "0.0.0.0", "-p", "80",
            "-f", "api.R", "-w", "8"}, Map.of());
        assertEquals("/srv/api", values.get("dir"));
        assertEquals("0.0.0.0", values.get("host"));
        assertEquals("80", values.get("port"));
        assertEquals("8", values.get("workers"));
    }

    @Test
    void typeSaysWhatADirectoryHolds() {
        assertEquals("auto", Main.parse(new String[0], Map.of()).get("type"));
        assertEquals("20", Main.parse(new String[0], Map.of()).get("max-sessions"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> Main.config(Main.parse(new String[] {"--type", "shiny"}, Map.of()))).getMessage()
                .contains("give --dir too"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> Main.config(Main.parse(new String[] {"--type", "flask", "--dir", "/tmp"}, Map.of()))).getMessage()
                .contains("--type must be auto, plumber or shiny, not 'flask'"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> Main.config(Main.parse(new String[] {"--dir", "/tmp", "--max-sessions", "0"}, Map.of())))
                .getMessage().contains("max_sessions must be a whole number >= 1"));
    }

    @Test
    void mistakesAreRefusedWithTheirName() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Main.parse(new String[] {"--nope", "1"}, Map.of()))
                .getMessage().contains("--nope"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Main.parse(new String[] {"-p"}, Map.of()))
                .getMessage().contains("needs a value"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Main.parse(new String[] {"serve"}, Map.of()))
                .getMessage().contains("unknown command"));
    }

    @Test
    void theAdminPortIsUnsetByDefaultAndTheAccessLogOn() {
        Map<String, String> values = Main.parse(new String[0], Map.of());
        assertEquals(null, values.get("admin-port"));
        assertEquals("true", values.get("access-log"));
        assertEquals("9090", Main.parse(new String[] {"--admin-port", "9090"}, Map.of()).get("admin-port"));
        assertEquals("0", Main.parse(new String[0], Map.of("VALVE_ADMIN_PORT", "0")).get("admin-port"));
        assertTrue(Main.help().contains("--no-access-log"));
        assertTrue(Main.help().contains("VALVE_ADMIN_PORT"));
    }

    @Test
    void theAccessLogIsTurnedOffByAFlagOrTheEnvironment() {
        assertEquals("false", Main.parse(new String[] {"--no-access-log"}, Map.of()).get("access-log"));
        assertEquals("false", Main.parse(new String[0], Map.of("VALVE_ACCESS_LOG", "false")).get("access-log"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> Main.parse(new String[] {"--no-access-log=yes"}, Map.of())).getMessage().contains("takes no value"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> Main.parse(new String[] {"--access-log", "false"}, Map.of())).getMessage().contains("unknown option"));
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = Main.run(new String[0], Map.of("VALVE_ACCESS_LOG", "maybe"), new PrintStream(new ByteArrayOutputStream()),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        assertEquals(Main.EXIT_USAGE, status);
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("--access-log (VALVE_ACCESS_LOG) must be true or false, not 'maybe'"));
    }

    @Test
    void badValuesExitWithTheUsageStatus() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = Main.run(new String[] {"--n-max", "lots"}, Map.of(), new PrintStream(new ByteArrayOutputStream()),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        assertEquals(Main.EXIT_USAGE, status);
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("--n-max must be a whole number"));
    }

    @Test
    void defaultsAreTheEngines() {
        Map<String, String> values = Main.parse(new String[0], Map.of());
        for (String name : new String[] {"host", "port", "n-min", "n-max", "check-unused", "max-age", "queue-max",
            "queue-timeout", "request-timeout", "startup-timeout", "max-body-size", "client-timeout", "max-requests",
            "max-requests-jitter", "max-worker-memory", "per-pod", "resolve-interval"}) {
            assertEquals(ValveConfig.number(ValveConfig.defaultOf(name.replace('-', '_'))), values.get(name), name);
        }
        assertEquals("268435456", values.get("max-body-size"));
        assertTrue(Main.help().contains("[VALVE_MAX_BODY_SIZE, default 268435456]"));
    }

    @Test
    void aSwitchTakesNoValueOnTheCommandLineAndTrueOrFalseFromItsVariable() {
        assertEquals("true", Main.parse(new String[] {"--watch", "-n", "2"}, Map.of()).get("watch"));
        assertEquals("2", Main.parse(new String[] {"--watch", "-n", "2"}, Map.of()).get("n-max"));
        assertEquals("false", Main.parse(new String[] {"--watch=false"}, Map.of()).get("watch"));
        assertEquals("true", Main.parse(new String[0], Map.of("VALVE_WATCH", "true")).get("watch"));
        assertEquals("false", Main.parse(new String[0], Map.of()).get("watch"));
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = Main.run(new String[] {"--watch=sometimes"}, Map.of(), new PrintStream(new ByteArrayOutputStream()),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        assertEquals(Main.EXIT_USAGE, status);
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("--watch (VALVE_WATCH) must be true or false, not 'sometimes'"));
    }

    @Test
    void dashHAloneAsksForHelp() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = Main.run(new String[] {"-h"}, Map.of(), new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        assertEquals(Main.EXIT_OK, status);
        assertEquals(Main.help(), out.toString(StandardCharsets.UTF_8));
        assertEquals("", err.toString(StandardCharsets.UTF_8));
        assertTrue(Main.parse(new String[] {"-h", "--port", "80"}, Map.of()).containsKey("help"));
        assertEquals("::", Main.parse(new String[] {"-h", "::"}, Map.of()).get("host"));
    }

    /**
     * Runs the real command in its own JVM, with its own temporary directory, laid out as an
     * installed package ({@code <pkg>/java} beside {@code <pkg>/worker/worker.R}) so that a valid
     * command line would go on to start the engine.
     */
    private static String[] runInstalled(Path root, String... args) throws Exception {
        Path pkg = Files.createDirectories(root.resolve("pkg").resolve("java")).getParent();
        // A copy, not a link: the JVM reports a class directory's real path as its location.
        Path classes = Path.of(Main.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        try (Stream<Path> files = Files.walk(classes)) {
            for (Path file : files.toList()) {
                Files.copy(file, pkg.resolve("java").resolve("classes").resolve(classes.relativize(file).toString()));
            }
        }
        Files.createDirectories(pkg.resolve("worker"));
        Files.writeString(pkg.resolve("worker").resolve("worker.R"), "# never run\n");
        Path tmp = Files.createDirectories(root.resolve("tmp"));
        Path api = Files.writeString(root.resolve("plumber.R"), "#* @get /\nfunction() 1\n");
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Djava.io.tmpdir=" + tmp, "-cp",
                pkg.resolve("java").resolve("classes") + File.pathSeparator + System.getProperty("java.class.path"),
                Main.class.getName(), "-p", "0"));
        if (!args[0].equals("--config")) {
            // A config file says what to serve itself.
            command.addAll(List.of("-f", api.toString()));
        }
        command.addAll(List.of(args));
        ProcessBuilder builder = new ProcessBuilder(command)
                .redirectOutput(root.resolve("stdout").toFile())
                .redirectError(root.resolve("stderr").toFile());
        builder.environment().keySet().removeIf(name -> name.startsWith("VALVE_") || name.equals("PORT"));
        Process process = builder.start();
        try {
            assertTrue(process.waitFor(60, TimeUnit.SECONDS), "valve did not exit");
        } finally {
            process.destroyForcibly();
        }
        try (Stream<Path> left = Files.list(tmp)) {
            return new String[] {Integer.toString(process.exitValue()),
                Files.readString(root.resolve("stderr")), String.join(",", left.map(p -> p.getFileName().toString()).toList())};
        }
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "-n 0                   | n_max must be a whole number >= 1, not 0",
        "--n-min 5 --n-max 2    | n_min (5) must not be larger than n_max (2)",
        "--queue-max -1         | queue_max must be a whole number >= 0, not -1",
        "--max-age 0            | max_age must be a positive number of seconds, not 0",
        "--port 70000           | port must be a whole number between 0 and 65535, not 70000"})
    void ruleBreakingValuesExitTwoWithOneLineAndLeaveNothingOnDisk(String args, String message, @TempDir Path root)
            throws Exception {
        String[] result = runInstalled(root, args.trim().split(" +"));
        assertEquals("2", result[0], result[1]);
        assertEquals("valve: " + message + System.lineSeparator(), result[1]);
        assertEquals("", result[2], "files left in the temporary directory");
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "n_maxx: 2                           | valve.yml: unknown key 'n_maxx' (known: host, port,",
        "n_max: four                         | valve.yml: n_max must be a whole number, not 'four'",
        "watch: 1                            | valve.yml: watch must be true or false, not 1",
        "routes: {/api: {path: ., nmax: 2}}  | valve.yml: unknown key 'nmax' in routes./api (known: path, n_min,",
        "routes: {/api: {path: ., n_max: x}} | valve.yml: routes./api.n_max must be a whole number, not 'x'",
        "routes: {/api: {n_max: 2}}          | valve.yml: routes./api needs a path",
        "routes: {/api: nowhere/}            | valve.yml: routes./api: ",
        "routes: {/api: {path: ., n_max: 0}} | routes./api.n_max must be a whole number >= 1, not 0",
        "routes: {api: .}                    | routes: 'api' is not a path prefix",
        "'routes: [a, b]'                    | valve.yml: routes must be a mapping of path prefixes",
        "'port: [1'                          | valve.yml is not valid YAML: "})
    void configFileMistakesExitTwoWithOneLineNamingTheKey(String yaml, String message, @TempDir Path root)
            throws Exception {
        Path file = Files.writeString(Files.createDirectories(root.resolve("conf")).resolve("valve.yml"), yaml + "\n");
        String[] result = runInstalled(root, "--config", file.toString());
        assertEquals("2", result[0], result[1]);
        String line = result[1].replace(file.toString(), "valve.yml");
        assertTrue(line.startsWith("valve: ") && line.contains(message), line);
        assertEquals(1, line.lines().count(), line);
        assertEquals("", result[2], "files left in the temporary directory");
    }

    @Test
    void aMissingConfigFileExitsTwo(@TempDir Path root) throws Exception {
        String[] result = runInstalled(root, "--config", root.resolve("nowhere.yml").toString());
        assertEquals("2", result[0], result[1]);
        assertTrue(result[1].contains("the config file " + root.resolve("nowhere.yml") + " does not exist"), result[1]);
    }

    @Test
    void helpNamesEveryOptionAndItsVariable() {
        String help = Main.help();
        for (String text : new String[] {"--host", "VALVE_HOST", "--n-min", "VALVE_N_MIN", "--client-timeout",
            "-w, --workers", "local --dir", "Exit status"}) {
            assertTrue(help.contains(text), "help lacks " + text);
        }
    }
}
