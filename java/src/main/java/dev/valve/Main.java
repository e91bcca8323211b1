package dev.valve;

import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.function.BiConsumer;
import java.util.function.Predicate;

import com.fasterxml.jackson.databind.node.ObjectNode;

import dev.valve.log.LogSink;
import dev.valve.worker.WorkerProtocol;
import dev.valve.worker.WorkerSpec;

import sun.misc.Signal;

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
    /** How long the last log lines may take to reach stderr before the process exits. */
    private static final Duration LOG_FLUSH = Duration.ofSeconds(2);

    /**
     * One option: its flags, its environment variable, its default, and what it means. A switch
     * (a true/false option) takes no value on the command line: one that is off by default is
     * turned on by {@code --NAME} ({@code --NAME=false} works too), one that is on by default is
     * turned off by {@code --no-NAME}; its variable takes {@code true} or {@code false}.
     */
    private record Option(String name, String shortFlag, String env, String fallback, String help, boolean isSwitch) {
        Option(String name, String shortFlag, String env, String fallback, String help) {
            this(name, shortFlag, env, fallback, help, false);
        }

        /** An option whose default is {@link ValveConfig}'s, under the same name in snake_case. */
        static Option engine(String name, String shortFlag, String help) {
            Object fallback = ValveConfig.defaultOf(name.replace('-', '_'));
            return new Option(name, shortFlag, "VALVE_" + name.toUpperCase(Locale.ROOT).replace('-', '_'),
                    fallback == null ? null : ValveConfig.number(fallback), help, fallback instanceof Boolean);
        }

        /** Whether the switch is on unless turned off, so that its flag is {@code --no-NAME}. */
        boolean onByDefault() {
            return isSwitch && "true".equals(fallback);
        }

        String flag() {
            return onByDefault() ? "--no-" + name : "--" + name;
        }
    }

    private static final List<Option> OPTIONS = List.of(
            new Option("config", "-c", "VALVE_CONFIG", null, "YAML file of settings and routes (see the README); "
                    + "options and variables given override it"),
            Option.engine("host", "-h", "address to listen on (0.0.0.0: every interface)"),
            Option.engine("port", "-p", "port to listen on (also read from PORT)"),
            new Option("file", "-f", "VALVE_FILE", "plumber.R", "plumber file each worker runs"),
            new Option("dir", null, "VALVE_DIR", null, "directory with entrypoint.R or plumber.R, or a Shiny app "
                    + "(app.R, or ui.R and server.R), instead of --file"),
            new Option("type", null, "VALVE_TYPE", "auto", "what --dir holds: auto (plumber files win), plumber or shiny"),
            Option.engine("max-sessions", null, "Shiny: most sessions per worker (then another worker starts)"),
            new Option("service-url", null, "VALVE_SERVICE_URL", null,
                    "http://name:port of a headless service: its pods are the workers (instead of --file)"),
            Option.engine("per-pod", null, "requests one pod may have in flight at once"),
            Option.engine("resolve-interval", null, "seconds between look-ups of --service-url"),
            Option.engine("n-max", "-n", "most workers at once"),
            Option.engine("n-min", null, "workers kept running when idle"),
            Option.engine("check-unused", null, "seconds between checks for idle workers"),
            Option.engine("max-age", null, "seconds a worker may stay idle before it stops"),
            Option.engine("queue-max", null, "most requests waiting for a worker (then 503)"),
            Option.engine("queue-timeout", null, "seconds a request may wait (then 503)"),
            Option.engine("request-timeout", null, "seconds a worker may stay silent (then 504)"),
            Option.engine("startup-timeout", null, "seconds a worker may take to start"),
            Option.engine("max-body-size", null, "largest request body in bytes (then 413)"),
            Option.engine("client-timeout", null, "seconds a client may stay silent"),
            Option.engine("max-requests", null, "requests after which a worker is replaced (0: never)"),
            Option.engine("max-requests-jitter", null, "up to this many more requests, drawn per worker"),
            Option.engine("max-worker-memory", null, "MiB of resident memory above which a worker is replaced (0: never)"),
            Option.engine("watch", null, "reload the workers when a .R file in the API's directory changes"),
            Option.engine("preload", null, "fork workers from one R process that loaded the API once"),
            Option.engine("admin-port", null, "port for /metrics, /healthz, /readyz and /status (0: a free one; "
                    + "unset: none)"),
            Option.engine("access-log", null, "no access log line per request"),
            new Option("rscript", null, "VALVE_RSCRIPT", WorkerSpec.DEFAULT_RSCRIPT, "the Rscript that runs workers"),
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
        Map<String, String> given;
        Map<String, String> values;
        try {
            given = given(args, env);
            values = withFallbacks(given);
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
            config = config(values, given.keySet());
        } catch (IllegalArgumentException e) {
            err.println("valve: " + e.getMessage());
            return EXIT_USAGE;
        }
        LogSink log = new LogSink(1000, err);
        Valve valve;
        try {
            valve = Valve.start(config, log);
        } catch (ValveException e) {
            log.flush(LOG_FLUSH);
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
                log.flush(LOG_FLUSH);
                out.flush();
                err.flush();
                // A graceful stop is a success: without this the JVM reports 128 + the signal.
                Runtime.getRuntime().halt(status);
            }
        }, "valve-shutdown"));
        reloadOnHangUp(valve);
        out.println("valve is serving " + valve.url() + " (Ctrl-C or SIGTERM stops it, SIGHUP reloads)");
        if (valve.adminUrl() != null) {
            out.println("metrics, probes and status: " + valve.adminUrl() + "/status");
        }
        log.drain();
        try {
            stopped.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return EXIT_OK;
    }

    /** As gunicorn: SIGHUP replaces every worker with one running the current code, without downtime. */
    private static void reloadOnHangUp(Valve valve) {
        try {
            Signal.handle(new Signal("HUP"), signal -> valve.reloadInBackground("SIGHUP"));
        } catch (IllegalArgumentException e) {
            // No SIGHUP on this platform: valve_reload() and --watch remain.
        }
    }

    /** Flags, then environment variables, then defaults. */
    static Map<String, String> parse(String[] args, Map<String, String> env) {
        return withFallbacks(given(args, env));
    }

    /** The options given: by flag, else by environment variable. */
    static Map<String, String> given(String[] args, Map<String, String> env) {
        Map<String, String> values = new LinkedHashMap<>();
        int start = 0;
        if (args.length > 0 && (args[0].equals("local") || args[0].equals("k8s"))) {
            start = 1;
        } else if (args.length > 0 && !args[0].startsWith("-")) {
            throw new IllegalArgumentException("unknown command '" + args[0] + "' (commands: local, k8s)");
        }
        for (int i = start; i < args.length; i++) {
            String arg = args[i];
            // Valve's -h is --host, but alone (or before another option) it can only mean help.
            if (arg.equals("--help") || arg.equals("-h") && (i + 1 == args.length || args[i + 1].startsWith("-"))) {
                values.put("help", "true");
                return values;
            }
            String inline = null;
            if (arg.startsWith("--") && arg.contains("=")) {
                inline = arg.substring(arg.indexOf('=') + 1);
                arg = arg.substring(0, arg.indexOf('='));
            }
            Option option = find(arg);
            if (option.onByDefault()) {
                if (inline != null) {
                    throw new IllegalArgumentException(arg + " takes no value");
                }
                values.put(option.name(), "false");
                continue;
            }
            String value = inline;
            if (value == null && option.isSwitch()) {
                value = "true";
            } else if (value == null) {
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
                if (fromEnv != null && !fromEnv.isEmpty()) {
                    values.put(option.name(), fromEnv);
                }
            }
        }
        return values;
    }

    /** The options given, and every other one with its default. */
    private static Map<String, String> withFallbacks(Map<String, String> given) {
        Map<String, String> values = new LinkedHashMap<>(given);
        if (!values.containsKey("help")) {
            for (Option option : OPTIONS) {
                values.putIfAbsent(option.name(), option.fallback());
            }
        }
        return values;
    }

    private static Option find(String flag) {
        for (Option option : OPTIONS) {
            if (flag.equals(option.flag()) || flag.equals(option.shortFlag())) {
                return option;
            }
        }
        throw new IllegalArgumentException("unknown option " + flag);
    }

    /** Turns the options into a configuration, all of them taken as given. */
    static ValveConfig config(Map<String, String> values) {
        return config(values, values.keySet());
    }

    /**
     * Turns the options into a configuration. Only their types are checked here: every range and
     * rule is {@link ValveConfig}'s, so the command line and R refuse the same values alike. With
     * {@code --config}, the file's settings take the place of the defaults, and only the options
     * {@code given} (flags, variables) override them.
     */
    static ValveConfig config(Map<String, String> values, Set<String> given) {
        // Types first, then the files named, then the rules, and where valve is installed last.
        ValveConfig config = configOf(values, given);
        if (config.upstream() == null) {
            WorkerProtocol.installedScript();
        }
        return config;
    }

    /** {@link #config(Map, Set)} without looking for valve's installation. */
    /** What --file or --dir serves; a directory as --type says, or as its files say. */
    private static WorkerSpec localWorker(Map<String, String> values) {
        if (values.get("dir") == null) {
            return WorkerSpec.of(WorkerSpec.FILE, Path.of(values.get("file")), values.get("rscript"));
        }
        String type = values.get("type").trim();
        Path dir = Path.of(values.get("dir"));
        WorkerSpec worker = WorkerSpec.of(type.equals("shiny") ? WorkerSpec.SHINY : WorkerSpec.DIR, dir,
                values.get("rscript"));
        if (type.equals("plumber") && worker.servesSessions()) {
            throw new IllegalArgumentException("--type plumber: " + dir + " has no entrypoint.R or plumber.R");
        }
        return worker;
    }

    static ValveConfig configOf(Map<String, String> values, Set<String> given) {
        String file = values.get("config");
        String type = values.get("type").trim();
        if (!List.of("auto", "plumber", "shiny").contains(type)) {
            throw new IllegalArgumentException("--type must be auto, plumber or shiny, not '" + type + "'");
        }
        if (!type.equals("auto") && values.get("dir") == null) {
            throw new IllegalArgumentException("--type says what --dir holds; give --dir too");
        }
        Predicate<String> set = name -> file == null || given.contains(name);
        ObjectNode members = ValveConfig.newTree();
        BiConsumer<String, Object> put = (name, value) -> members.set(name.replace('-', '_'),
                ValveConfig.toTree(value));
        if (set.test("host")) {
            put.accept("host", values.get("host"));
        }
        for (String name : List.of("port", "n-min", "n-max", "queue-max", "max-requests", "max-requests-jitter",
                "max-worker-memory", "per-pod", "max-sessions")) {
            if (set.test(name)) {
                put.accept(name, integer(values, name));
            }
        }
        for (String name : List.of("check-unused", "max-age", "queue-timeout", "request-timeout", "startup-timeout",
                "client-timeout", "resolve-interval")) {
            if (set.test(name)) {
                put.accept(name, number(values, name));
            }
        }
        if (set.test("max-body-size")) {
            put.accept("max-body-size", whole(values, "max-body-size"));
        }
        for (String name : List.of("watch", "preload", "access-log")) {
            if (set.test(name)) {
                put.accept(name, bool(values, name));
            }
        }
        if (values.get("admin-port") != null && set.test("admin-port")) {
            put.accept("admin-port", integer(values, "admin-port"));
        }
        String serviceUrl = values.get("service-url");
        boolean sourceGiven = given.contains("file") || given.contains("dir") || given.contains("service-url");
        if (file == null || sourceGiven) {
            if (serviceUrl != null) {
                put.accept("upstream", serviceUrl);
            } else {
                put.accept("worker", localWorker(values));
            }
        }
        ObjectNode tree = members;
        if (file != null) {
            tree = ConfigFile.read(Path.of(file), new ConfigFile.WorkerDefaults(values.get("rscript"), null, null),
                    members);
            if (!tree.has("worker") && !tree.has("upstream") && !tree.has("routes")) {
                // Neither the file nor an option says what to serve: the default file.
                tree.set("worker", ValveConfig.toTree(WorkerSpec.of(WorkerSpec.FILE, Path.of(values.get("file")),
                        values.get("rscript"))));
            }
        }
        return ValveConfig.fromTree(tree);
    }

    private static int integer(Map<String, String> values, String name) {
        try {
            return Integer.parseInt(values.get(name).trim());
        } catch (NumberFormatException e) {
            throw notWhole(values, name);
        }
    }

    private static long whole(Map<String, String> values, String name) {
        try {
            return Long.parseLong(values.get(name).trim());
        } catch (NumberFormatException e) {
            throw notWhole(values, name);
        }
    }

    private static IllegalArgumentException notWhole(Map<String, String> values, String name) {
        return new IllegalArgumentException("--" + name + " must be a whole number, not '" + values.get(name) + "'");
    }

    private static boolean bool(Map<String, String> values, String name) {
        String value = values.get(name).trim().toLowerCase(Locale.ROOT);
        return switch (value) {
            case "true", "yes", "1" -> true;
            case "false", "no", "0" -> false;
            default -> throw new IllegalArgumentException("--" + name + " (VALVE_"
                    + name.toUpperCase(Locale.ROOT).replace('-', '_') + ") must be true or false, not '"
                    + values.get(name) + "'");
        };
    }

    private static double number(Map<String, String> values, String name) {
        try {
            return Double.parseDouble(values.get(name).trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + name + " must be a number, not '" + values.get(name) + "'");
        }
    }

    static String help() {
        StringBuilder text = new StringBuilder("""
                Usage: valve [options]              serve a plumber file (Valve's shape)
                       valve --config valve.yml     serve the apps of a config file, each on its route
                       valve local --dir DIR [opts] serve a directory (Faucet's shape)
                       valve k8s --service-url URL  forward to the pods behind a headless service

                Serves a plumber API from a pool of R worker processes behind one port.

                Options (each also read from the environment variable shown):
                """);
        for (Option option : OPTIONS) {
            String flags = (option.shortFlag() == null ? "    " : option.shortFlag() + ", ") + option.flag();
            text.append(String.format(Locale.ROOT, "  %-24s %s [%s%s]%n", flags, option.help(), option.env(),
                    option.fallback() == null ? "" : ", default " + option.fallback()));
        }
        text.append("""
                      --help (or -h alone) this text

                SIGHUP reloads: new workers start with the API's current code, the old ones finish their requests.
                Exit status: 0 stopped by SIGTERM/SIGINT, 2 bad option, 3 cannot listen, 4 workers failed to start.
                """);
        return text.toString();
    }
}
