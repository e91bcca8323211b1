package dev.valve.pool;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.concurrent.locks.ReentrantLock;

import dev.valve.log.LogSink;
import dev.valve.worker.WorkerProtocol;
import dev.valve.worker.WorkerSpec;

/**
 * Starts R worker processes as {@link WorkerProtocol} describes: each serves HTTP on 127.0.0.1
 * at the port given in its environment.
 *
 * <p>Each worker runs in its own session ({@code setsid}), so a Ctrl-C in the R console does not
 * reach it. Its output (stdout and stderr merged) is logged line by line, tagged with its name.
 * It is ready when it answers an HTTP request; log text is never trusted for that.
 *
 * <p>Everything here that blocks on a process (spawning, writing its stdin, polling it, reading
 * its output, waiting for it to exit) runs on platform threads: a virtual thread blocked in a
 * pipe read pins its carrier, and a few such workers would stop the whole engine answering.
 */
public final class ProcessLauncher implements UpstreamLauncher {
    private static final int PORT_ATTEMPTS = 3;
    private static final Duration TERMINATE_GRACE = Duration.ofSeconds(2);
    private static final Duration READER_JOIN = Duration.ofSeconds(1);
    /** How long an exited worker may take to be reaped, so that its exit status can be read. */
    private static final Duration REAP_WAIT = Duration.ofSeconds(1);
    private static final Path SETSID = Path.of("/usr/bin/setsid");

    /**
     * @param worker         what the workers serve and with which R
     * @param script         the worker script, {@link WorkerProtocol#installedScript()} outside tests
     * @param startupTimeout how long a worker may take to answer HTTP
     * @param secret         written to each worker's standard input as its first line
     * @param preload        fork workers from a {@link Template} that loaded the API once,
     *                       instead of starting each from scratch
     * @param names          what the workers' names start with: empty for a single app, the route
     *                       and a space ({@code "/api "}) when several share the log
     */
    public record Settings(WorkerSpec worker, Path script, Duration startupTimeout, String secret, boolean preload,
                           String names) {
        /** Workers started from scratch. */
        public Settings(WorkerSpec worker, Path script, Duration startupTimeout, String secret) {
            this(worker, script, startupTimeout, secret, false, "");
        }
    }

    private final Settings settings;
    private final LogSink log;
    private final Set<Process> launching = ConcurrentHashMap.newKeySet();
    /** Guards {@link #template}; held while one starts, so concurrent launches share it. */
    private final ReentrantLock templateLock = new ReentrantLock();
    private Template template;
    private volatile boolean closed;

    public ProcessLauncher(Settings settings, LogSink log) {
        this.settings = settings;
        this.log = log;
    }

    @Override
    public CompletableFuture<Upstream> launch(int id) {
        CompletableFuture<Upstream> result = new CompletableFuture<>();
        Thread.ofPlatform().daemon().name("valve-launch-" + id).start(() -> {
            try {
                result.complete(launchBlocking(id));
            } catch (Throwable e) {
                result.completeExceptionally(e);
            }
        });
        return result;
    }

    private Upstream launchBlocking(int id) throws IOException, InterruptedException {
        return settings.preload() ? forkBlocking(id) : spawnBlocking(id);
    }

    private Upstream spawnBlocking(int id) throws IOException, InterruptedException {
        String name = settings.names() + "worker " + id;
        for (int attempt = 1; ; attempt++) {
            if (closed) {
                throw new LaunchException(name + " was not started: the server is shutting down");
            }
            int port = freePort();
            long started = System.nanoTime();
            Process process = spawn(id, port);
            launching.add(process);
            Tail tail = new Tail();
            Thread reader = pipeLines(process.getInputStream(), name, line -> {
                log.add(name, line);
                tail.add(line);
            });
            try {
                if (awaitHttp(process.toHandle(), port, started)) {
                    long millis = (System.nanoTime() - started) / 1_000_000;
                    log.add("valve", name + " ready in " + millis + " ms (pid " + process.pid()
                            + ", port " + port + ")");
                    return new ProcessUpstream(name, process.toHandle(), port);
                }
                if (!process.toHandle().isAlive()) {
                    // The handle sees the exit before Process has reaped it; until then Process
                    // says alive and has no status: wait for it, briefly (a platform thread).
                    process.waitFor(REAP_WAIT.toMillis(), TimeUnit.MILLISECONDS);
                }
                if (!process.isAlive() && process.exitValue() == WorkerProtocol.EXIT_PORT_IN_USE
                        && attempt < PORT_ATTEMPTS) {
                    continue;
                }
                String why = closed ? "was stopped while starting: the server is shutting down"
                        : process.isAlive() ? "did not answer HTTP within " + settings.startupTimeout().toSeconds() + " s"
                        : "exited with status " + process.exitValue() + " before answering HTTP";
                ProcessUpstream.terminate(process.toHandle(), TERMINATE_GRACE);
                reader.join(READER_JOIN);
                throw new LaunchException(name + " " + why + tail.describe());
            } catch (InterruptedException | RuntimeException e) {
                ProcessUpstream.terminate(process.toHandle(), TERMINATE_GRACE);
                throw e;
            } finally {
                launching.remove(process);
            }
        }
    }

    private Process spawn(int id, int port) throws IOException {
        ProcessBuilder builder = builder(settings);
        WorkerProtocol.applyEnvironment(builder.environment(), settings.worker(), port, id);
        Process process = builder.start();
        try {
            WorkerProtocol.writeSecret(process.getOutputStream(), settings.secret());
        } catch (IOException e) {
            // The worker died at once; the readiness wait reports it with its output.
        }
        return process;
    }

    /** An R process as workers (and the template) run: in its own session, stdout and stderr merged. */
    static ProcessBuilder builder(Settings settings) {
        List<String> command = new ArrayList<>();
        if (Files.isExecutable(SETSID)) {
            command.add(SETSID.toString());
        }
        command.addAll(WorkerProtocol.command(settings.worker(), settings.script()));
        return new ProcessBuilder(command)
                .directory(settings.worker().workingDirectory().toFile())
                .redirectErrorStream(true);
    }

    /**
     * A worker forked by the template: the API is loaded already, so it only binds its port. Its
     * exit status is the template's to see, not ours: any exit before it answers is retried on
     * another port a few times, as a taken port would be.
     */
    private Upstream forkBlocking(int id) throws IOException, InterruptedException {
        String name = settings.names() + "worker " + id;
        for (int attempt = 1; ; attempt++) {
            if (closed) {
                throw new LaunchException(name + " was not started: the server is shutting down");
            }
            long started = System.nanoTime();
            Template from = template();
            int port = freePort();
            ProcessHandle process = from.fork(id, port, settings.startupTimeout());
            if (awaitHttp(process, port, started)) {
                long millis = (System.nanoTime() - started) / 1_000_000;
                log.add("valve", name + " ready in " + millis + " ms, forked from the template (pid "
                        + process.pid() + ", port " + port + ")");
                return new ProcessUpstream(name, process, port);
            }
            if (!process.isAlive() && !closed && attempt < PORT_ATTEMPTS) {
                continue;
            }
            String why = closed ? "was stopped while starting: the server is shutting down"
                    : process.isAlive() ? "did not answer HTTP within " + settings.startupTimeout().toSeconds() + " s"
                    : "exited before answering HTTP";
            ProcessUpstream.terminate(process, TERMINATE_GRACE);
            throw new LaunchException(name + " " + why + from.describeOutput());
        }
    }

    /**
     * With preload, starts the template now rather than with the first worker: with
     * {@code n_min = 0} the first request then waits only for a fork.
     */
    @Override
    public void prepare() {
        if (settings.preload()) {
            Thread.ofPlatform().daemon().name("valve-template-start").start(() -> {
                try {
                    template();
                } catch (IOException | RuntimeException e) {
                    log.add("valve", "the preload template could not start: " + e.getMessage());
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
        }
    }

    /** The template, started (and waited for) when there is none, it died, or a reload replaced it. */
    private Template template() throws IOException, InterruptedException {
        templateLock.lock();
        try {
            if (template == null || !template.isAlive()) {
                if (template != null) {
                    log.add("valve", "the preload template (pid " + template.pid() + ") is gone; starting a new one");
                }
                template = null;
                Template started = Template.start(settings, log);
                launching.add(started.process());
                try {
                    started.awaitReady(settings.startupTimeout(), () -> closed);
                } finally {
                    launching.remove(started.process());
                }
                template = started;
            }
            return template;
        } finally {
            templateLock.unlock();
        }
    }

    /**
     * With preload, the next worker comes from a new template that loads the API's current code;
     * the old template stops (its forks serve on until the pool replaces them). Nothing to do
     * otherwise: every worker is started from scratch anyway.
     */
    @Override
    public void reload() {
        Template old;
        templateLock.lock();
        try {
            old = template;
            template = null;
        } finally {
            templateLock.unlock();
        }
        if (old != null) {
            Thread.ofPlatform().daemon().name("valve-template-stop").start(old::stop);
        }
    }

    /** Polls until the worker answers any HTTP status, exits, or the start-up timeout passes. */
    private boolean awaitHttp(ProcessHandle process, int port, long started) throws InterruptedException {
        long deadline = started + settings.startupTimeout().toNanos();
        long pause = 20;
        while (System.nanoTime() - deadline < 0) {
            if (!process.isAlive() || closed) {
                return false;
            }
            if (HttpProbe.answers("127.0.0.1", port, WorkerProtocol.READY_PATH,
                    Duration.ofNanos(Math.max(1, deadline - System.nanoTime())))) {
                return true;
            }
            Thread.sleep(pause);
            pause = Math.min(pause * 3 / 2, 200);
        }
        return false;
    }

    /** One reader per process, for its whole life, on a platform thread; it ends when the pipe closes. */
    static Thread pipeLines(InputStream stream, String name, Consumer<String> onLine) {
        return Thread.ofPlatform().daemon().name("valve-log-" + name).start(() -> {
            try (BufferedReader reader = new BufferedReader(new InputStreamReader(stream, StandardCharsets.UTF_8))) {
                String line;
                while ((line = reader.readLine()) != null) {
                    onLine.accept(line);
                }
            } catch (IOException e) {
                // The pipe closes when the process exits; nothing left to read.
            }
        });
    }

    static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        }
    }

    /**
     * Kills workers still starting (ready ones belong to the pool, which stops them itself) and
     * deletes the files R wrote for this run: no worker will start again to read them.
     */
    @Override
    public void close() {
        closed = true;
        for (Process process : launching) {
            ProcessUpstream.terminate(process.toHandle(), TERMINATE_GRACE);
        }
        Template last;
        templateLock.lock();
        try {
            last = template;
            template = null;
        } finally {
            templateLock.unlock();
        }
        if (last != null) {
            last.stop();
        }
        for (Path file : settings.worker().temporaryFiles()) {
            try {
                Files.deleteIfExists(file);
            } catch (IOException e) {
                log.add("valve", "could not delete " + file + ": " + e.getMessage());
            }
        }
    }
}
