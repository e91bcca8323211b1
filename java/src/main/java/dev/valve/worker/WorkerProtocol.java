package dev.valve.worker;

import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.CodeSource;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * How the engine and {@code inst/worker/worker.R} talk, in one place: the command that starts a
 * worker, the environment it reads, the secret on its standard input, the path that tells it is
 * ready and the exit status that asks for another port. The R engine and the command line both
 * go through here, so they cannot drift apart.
 */
public final class WorkerProtocol {
    /** Port the worker must serve on, on 127.0.0.1. */
    public static final String ENV_PORT = "VALVE_PORT";
    /** The worker's number, as in its log tag. */
    public static final String ENV_WORKER_ID = "VALVE_WORKER_ID";
    /** The engine's PID: the worker leaves when it is gone, as JVM shutdown hooks never run when R exits. */
    public static final String ENV_PARENT_PID = "VALVE_PARENT_PID";
    /** {@link WorkerSpec#mode()}. */
    public static final String ENV_MODE = "VALVE_MODE";
    /** {@link WorkerSpec#path()}. */
    public static final String ENV_PATH = "VALVE_PATH";
    /** {@link WorkerSpec#runArgs()}; unset when there are none. */
    public static final String ENV_RUN_ARGS = "VALVE_RUN_ARGS";
    /** {@code 1} for the template of preforked workers, which gets no port of its own. */
    public static final String ENV_PRELOAD = "VALVE_PRELOAD";
    /** Every variable above: none may leak in from the engine's own environment. */
    static final List<String> VARIABLES = List.of(ENV_PORT, ENV_WORKER_ID, ENV_PARENT_PID, ENV_MODE, ENV_PATH,
            ENV_RUN_ARGS, ENV_PRELOAD);

    /** The template's line on stdout once the API is loaded and it takes fork commands. */
    public static final String TEMPLATE_READY = "valve-template-ready";
    /** The template's answer to a fork command: this prefix, the worker's id, a space, its pid. */
    public static final String FORKED = "valve-forked ";

    /** The header that carries the run's secret to plumber workers, whose guard in worker.R demands it. */
    public static final String SECRET_HEADER = "X-Valve-Secret";
    /** Shiny's own guard ({@code options(shiny.sharedSecret)}, as Shiny Server uses it) reads this one. */
    public static final String SHINY_SECRET_HEADER = "Shiny-Shared-Secret";

    /** Requested to see whether a worker answers; any HTTP status counts, as the secret guard answers 403. */
    public static final String READY_PATH = "/__valve__/ready";
    /** Exit status of a worker whose port was taken between the engine's probe and its bind: try another. */
    public static final int EXIT_PORT_IN_USE = 75;

    private WorkerProtocol() {
    }

    /** The header a worker serving {@code worker} finds the run's secret in. */
    public static String secretHeader(WorkerSpec worker) {
        return worker.servesSessions() ? SHINY_SECRET_HEADER : SECRET_HEADER;
    }

    /** The program and arguments that start one worker. */
    public static List<String> command(WorkerSpec worker, Path script) {
        return List.of(worker.rscript(), "--no-echo", "--no-restore", script.toString());
    }

    /** The variables one worker needs, added to (and overriding) the engine's own environment. */
    public static Map<String, String> environment(WorkerSpec worker, int port, int id) {
        Map<String, String> env = new TreeMap<>();
        env.put(ENV_PORT, Integer.toString(port));
        env.put(ENV_WORKER_ID, Integer.toString(id));
        env.put(ENV_PARENT_PID, Long.toString(ProcessHandle.current().pid()));
        env.put(ENV_MODE, worker.mode());
        env.put(ENV_PATH, worker.path());
        if (worker.runArgs() != null) {
            env.put(ENV_RUN_ARGS, worker.runArgs());
        }
        if (!worker.libPaths().isEmpty()) {
            // Workers then load the same packages as the R session that started valve.
            env.put("R_LIBS", String.join(File.pathSeparator, worker.libPaths()));
        }
        return env;
    }

    /** Applies {@link #environment} to a process's environment, dropping protocol variables it does not set. */
    public static void applyEnvironment(Map<String, String> processEnvironment, WorkerSpec worker, int port, int id) {
        VARIABLES.forEach(processEnvironment::remove);
        processEnvironment.putAll(environment(worker, port, id));
    }

    /**
     * As {@link #applyEnvironment} for the template of preforked workers: each fork gets its
     * port and id with its {@link #forkCommand}, and inherits the rest.
     */
    public static void applyTemplateEnvironment(Map<String, String> processEnvironment, WorkerSpec worker) {
        VARIABLES.forEach(processEnvironment::remove);
        Map<String, String> env = environment(worker, 0, 0);
        env.remove(ENV_PORT);
        env.remove(ENV_WORKER_ID);
        env.put(ENV_PRELOAD, "1");
        processEnvironment.putAll(env);
    }

    /** The line that asks the template for a worker with this id, serving on this port. */
    public static String forkCommand(int id, int port) {
        return "fork " + id + " " + port + "\n";
    }

    /**
     * Writes the run's secret as the first line of the worker's standard input and closes it:
     * unlike the environment, API code cannot read it back.
     */
    public static void writeSecret(OutputStream stdin, String secret) throws IOException {
        try (stdin) {
            stdin.write((secret + "\n").getBytes(StandardCharsets.US_ASCII));
        }
    }

    /** As {@link #writeSecret}, for the template, whose stdin stays open for fork commands. */
    public static void writeTemplateSecret(OutputStream stdin, String secret) throws IOException {
        stdin.write((secret + "\n").getBytes(StandardCharsets.US_ASCII));
        stdin.flush();
    }

    /**
     * The worker script installed beside the jars: {@code <package>/java/*.jar} next to
     * {@code <package>/worker/worker.R}.
     *
     * @throws IllegalArgumentException when valve does not run from an installed R package
     */
    public static Path installedScript() {
        CodeSource source = WorkerProtocol.class.getProtectionDomain().getCodeSource();
        if (source == null || source.getLocation() == null) {
            throw new IllegalArgumentException("cannot locate the valve installation to find its worker script");
        }
        Path jar;
        try {
            jar = Path.of(source.getLocation().toURI());
        } catch (URISyntaxException | IllegalArgumentException e) {
            throw new IllegalArgumentException("cannot locate the valve installation: " + e.getMessage(), e);
        }
        Path script = jar.toAbsolutePath().getParent().resolveSibling("worker").resolve("worker.R");
        if (!Files.isReadable(script)) {
            throw new IllegalArgumentException("worker script not found at " + script
                    + "; run valve from an installed R package");
        }
        return script;
    }
}
