package dev.valve;

import java.io.PrintStream;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import dev.valve.log.LogSink;

/**
 * The command line, for containers and shells: {@code java -jar valve-engine.jar [options]} or
 * the {@code valve} launcher script shipped in the package. Takes Valve's flags and defaults and
 * Faucet's {@code local --dir DIR} shape; every option can also come from a {@code VALVE_*}
 * environment variable ({@code PORT} too, as container platforms set it). SIGTERM and SIGINT
 * stop gracefully.
 */
public final class Main {
    /** Stopped normally (by SIGTERM or SIGINT). */
    static final int EXIT_OK = 0;
    /** The command line or an environment variable is wrong. */
    static final int EXIT_USAGE = 2;
    /** The address could not be bound. */
    static final int EXIT_BIND = 3;
    /** The workers could not be started. */
    static final int EXIT_STARTUP = 4;

    private static final double STOP_GRACE_SECONDS = 10;

    /** One option: its flags, its environment variable, its default, and what it means. */
    private record Option(String name, String shortFlag, String env, String fallback, String help) {
    }

    private static final List<Option> OPTIONS = List.of(
            new Option("host", "-h", "VALVE_HOST", "127.0.0.1", "address to listen on (0.0.0.0: every interface)"),
            new Option("port", "-p", "VALVE_PORT", "3000", "port to listen on (also read from PORT)"),
            new Option("file", "-f", "VALVE_FILE", "plumber.R", "plumber file each worker runs"),
            new Option("dir", null, "VALVE_DIR", null, "directory with entrypoint.R or plumber.R (instead of --file)"),
            new Option("service-url", null, "VALVE_SERVICE_URL", null,
                    "http://name:port of a headless service: its pods are the workers (instead of --file)"),
            new Option("per-pod", null, "VALVE_PER_POD", "1", "requests one pod may have in flight at once"),
            new Option("resolve-interval", null, "VALVE_RESOLVE_INTERVAL", "5", "seconds between look-ups of --service-url"),
            new Option("n-max", "-n", "VALVE_N_MAX", "3", "most workers at once"),
            new Option("n-min", null, "VALVE_N_MIN", "1", "workers kept running when idle"),
            new Option("check-unused", null, "VALVE_CHECK_UNUSED", "10", "seconds between checks for idle workers"),
            new Option("max-age", null, "VALVE_MAX_AGE", "300", "seconds a worker may stay idle before it stops"),
            new Option("queue-max", null, "VALVE_QUEUE_MAX", "1000", "most requests waiting for a worker (then 503)"),
            new Option("queue-timeout", null, "VALVE_QUEUE_TIMEOUT", "60", "seconds a request may wait (then 503)"),
            new Option("request-timeout", null, "VALVE_REQUEST_TIMEOUT", "300", "seconds a worker may stay silent (then 504)"),
            new Option("startup-timeout", null, "VALVE_STARTUP_TIMEOUT", "60", "seconds a worker may take to start"),
            new Option("max-body-size", null, "VALVE_MAX_BODY_SIZE", "268435456", "largest request body in bytes (then 413)"),
            new Option("client-timeout", null, "VALVE_CLIENT_TIMEOUT", "30", "seconds a client may stay silent"),
            new Option("rscript", null, "VALVE_RSCRIPT", "Rscript", "the Rscript that runs workers"),
            new Option("workers", "-w", "VALVE_WORKERS", null, "accepted for Valve compatibility and ignored: "
                    + "valve needs no thread setting (one virtual thread per request)"));

    private Main() {
    }

    public static void main(String[] args) {
        int status = run(args, System.getenv(), System.out, System.err);
        if (status != EXIT_OK) {
            System.exit(status);
        }
    }

    /** Runs the command; returns only on errors (a running server ends with the JVM). */
    static int run(String[] args, Map<String, String> env, PrintStream out, PrintStream err) {
        Map<String, String> values;
        try {
            values = parse(args, env);
        } catch (IllegalArgumentException e) {
            err.println("valve: " + e.getMessage());
            err.println("Try 'valve --help'.");
            return EXIT_USAGE;
        }
        if (values.containsKey("help")) {
            out.print(help());
            return EXIT_OK;
        }
        if (values.get("workers") != null) {
            err.println("valve: --workers is accepted for Valve compatibility and ignored: "
                    + "each request gets its own virtual thread; --n-max sets the number of R workers.");
        }
        ValveConfig config;
        try {
            config = config(values);
        } catch (IllegalArgumentException e) {
            err.println("valve: " + e.getMessage());
            return EXIT_USAGE;
        }
        LogSink log = new LogSink(1000, err);
        Valve valve;
        try {
            valve = Valve.start(config, log);
        } catch (ValveException e) {
            err.println("valve: " + e.getMessage());
            return ValveException.BIND.equals(e.kind()) ? EXIT_BIND : EXIT_STARTUP;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            int status = EXIT_OK;
            try {
                valve.stop(STOP_GRACE_SECONDS);
            } catch (RuntimeException e) {
                err.println("valve: stopping failed: " + e);
                status = 1;
            } finally {
                stopped.countDown();
                out.flush();
                err.flush();
                // A graceful stop is a success: without this the JVM reports 128 + the signal.
                Runtime.getRuntime().halt(status);
            }
        }, "valve-shutdown"));
        out.println("valve is serving " + valve.url() + " (Ctrl-C or SIGTERM stops it)");
        log.drain();
        try {
            stopped.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return EXIT_OK;
    }

    /** Flags, then environment variables, then defaults. */
    static Map<String, String> parse(String[] args, Map<String, String> env) {
        Map<String, String> values = new LinkedHashMap<>();
        int start = 0;
        if (args.length > 0 && (args[0].equals("local") || args[0].equals("k8s"))) {
            start = 1;
        } else if (args.length > 0 && !args[0].startsWith("-")) {
            throw new IllegalArgumentException("unknown command '" + args[0] + "' (commands: local, k8s)");
        }
        for (int i = start; i < args.length; i++) {
            String arg = args[i];
            if (arg.equals("--help")) {
                values.put("help", "true");
                return values;
            }
            String inline = null;
            if (arg.startsWith("--") && arg.contains("=")) {
                inline = arg.substring(arg.indexOf('=') + 1);
                arg = arg.substring(0, arg.indexOf('='));
            }
            Option option = find(arg);
            String value = inline;
            if (value == null) {
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException(arg + " needs a value");
                }
                value = args[++i];
            }
            values.put(option.name(), value);
        }
        for (Option option : OPTIONS) {
            if (!values.containsKey(option.name())) {
                String fromEnv = env.get(option.env());
                if (fromEnv == null && option.name().equals("port")) {
                    fromEnv = env.get("PORT");
                }
                values.put(option.name(), fromEnv != null && !fromEnv.isEmpty() ? fromEnv : option.fallback());
            }
        }
        return values;
    }

    private static Option find(String flag) {
        for (Option option : OPTIONS) {
            if (flag.equals("--" + option.name()) || flag.equals(option.shortFlag())) {
                return option;
            }
        }
        throw new IllegalArgumentException("unknown option " + flag);
    }

    static ValveConfig config(Map<String, String> values) {
        // What the user typed is checked first; where valve is installed, last.
        int port = integer(values, "port");
        int nMin = integer(values, "n-min");
        int nMax = integer(values, "n-max");
        int queueMax = integer(values, "queue-max");
        double checkUnused = number(values, "check-unused");
        double maxAge = number(values, "max-age");
        double queueTimeout = number(values, "queue-timeout");
        double requestTimeout = number(values, "request-timeout");
        double startupTimeout = number(values, "startup-timeout");
        double clientTimeout = number(values, "client-timeout");
        long maxBodySize = (long) number(values, "max-body-size");
        if (values.get("service-url") != null) {
            ValveConfig service = new ValveConfig(values.get("host"), port, nMin, nMax, checkUnused, maxAge, queueMax,
                    queueTimeout, requestTimeout, startupTimeout, maxBodySize, null, clientTimeout,
                    values.get("service-url"), integer(values, "per-pod"), number(values, "resolve-interval"), null);
            service.service();
            return service;
        }
        Map<String, String> environment = new LinkedHashMap<>();
        String directory;
        if (values.get("dir") != null) {
            Path dir = Path.of(values.get("dir")).toAbsolutePath().normalize();
            if (!Files.isDirectory(dir)) {
                throw new IllegalArgumentException("--dir " + dir + " is not a directory");
            }
            environment.put("VALVE_MODE", "dir");
            environment.put("VALVE_DIR", dir.toString());
            directory = dir.toString();
        } else {
            Path file = Path.of(values.get("file")).toAbsolutePath().normalize();
            if (!Files.isReadable(file)) {
                throw new IllegalArgumentException("--file " + file + " does not exist or is not readable");
            }
            environment.put("VALVE_MODE", "file");
            environment.put("VALVE_PLUMBER_FILE", file.toString());
            directory = file.getParent().toString();
        }
        List<String> command = new ArrayList<>(List.of(values.get("rscript"), "--no-echo", "--no-restore",
                workerScript().toString()));
        return new ValveConfig(values.get("host"), port, nMin, nMax, checkUnused, maxAge, queueMax, queueTimeout,
                requestTimeout, startupTimeout, maxBodySize, null, clientTimeout, null, null, null,
                new ValveConfig.Worker(command, environment, directory));
    }

    private static int integer(Map<String, String> values, String name) {
        try {
            return Integer.parseInt(values.get(name).trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + name + " must be a whole number, not '" + values.get(name) + "'");
        }
    }

    private static double number(Map<String, String> values, String name) {
        try {
            double value = Double.parseDouble(values.get(name).trim());
            if (!(value > 0) || Double.isInfinite(value)) {
                throw new NumberFormatException();
            }
            return value;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + name + " must be a positive number, not '" + values.get(name) + "'");
        }
    }

    /** The worker script installed beside the jars: {@code <package>/java/*.jar}, {@code <package>/worker/worker.R}. */
    private static Path workerScript() {
        try {
            Path jar = Path.of(Main.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            Path script = jar.getParent().resolveSibling("worker").resolve("worker.R");
            if (!Files.isReadable(script)) {
                throw new IllegalArgumentException("worker script not found at " + script + "; run valve from an installed R package");
            }
            return script;
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("cannot locate the valve installation: " + e.getMessage());
        }
    }

    static String help() {
        StringBuilder text = new StringBuilder("""
                Usage: valve [options]              serve a plumber file (Valve's shape)
                       valve local --dir DIR [opts] serve a directory (Faucet's shape)
                       valve k8s --service-url URL  forward to the pods behind a headless service

                Serves a plumber API from a pool of R worker processes behind one port.

                Options (each also read from the environment variable shown):
                """);
        for (Option option : OPTIONS) {
            String flags = (option.shortFlag() == null ? "    " : option.shortFlag() + ", ") + "--" + option.name();
            text.append(String.format(Locale.ROOT, "  %-24s %s [%s%s]%n", flags, option.help(), option.env(),
                    option.fallback() == null ? "" : ", default " + option.fallback()));
        }
        text.append("""
                      --help                   this text

                Exit status: 0 stopped by SIGTERM/SIGINT, 2 bad option, 3 cannot listen, 4 workers failed to start.
                """);
        return text.toString();
    }
}
