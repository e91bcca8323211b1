package dev.valve.pool;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;

import dev.valve.log.LogSink;

/**
 * Starts worker processes that serve HTTP on 127.0.0.1 at the port given in {@code VALVE_PORT}.
 *
 * <p>Each worker runs in its own session ({@code setsid}), so a Ctrl-C in the R console does not
 * reach it, and gets the engine's PID in {@code VALVE_PARENT_PID} for its watchdog, since JVM
 * shutdown hooks never run when R exits. Its output is logged line by line, tagged with its name.
 * It is ready when it answers an HTTP request; log text is never trusted for that.
 */
public final class ProcessLauncher implements UpstreamLauncher {
    /** Exit status a worker uses when its port was taken between probe and bind: try another. */
    static final int EXIT_PORT_IN_USE = 75;
    private static final int PORT_ATTEMPTS = 3;
    private static final int TAIL_LINES = 40;
    private static final Path SETSID = Path.of("/usr/bin/setsid");

    /**
     * @param command        program and arguments of one worker
     * @param environment    variables added to the engine's own environment
     * @param directory      working directory of the workers
     * @param startupTimeout how long a worker may take to answer HTTP
     * @param probePath      path requested to see whether a worker answers
     * @param secret         written to each worker's standard input as its first line, then
     *                       closed; unlike the environment, API code cannot read it back
     */
    public record Settings(List<String> command, Map<String, String> environment, Path directory,
                           Duration startupTimeout, String probePath, String secret) {
        public Settings {
            command = List.copyOf(command);
            environment = Map.copyOf(environment);
            if (command.isEmpty()) {
                throw new IllegalArgumentException("command must not be empty");
            }
        }
    }

    private final Settings settings;
    private final LogSink log;
    private final Set<Process> launching = ConcurrentHashMap.newKeySet();
    private volatile boolean closed;

    public ProcessLauncher(Settings settings, LogSink log) {
        this.settings = settings;
        this.log = log;
    }

    @Override
    public CompletableFuture<Upstream> launch(int id) {
        CompletableFuture<Upstream> result = new CompletableFuture<>();
        Thread.ofVirtual().name("valve-launch-" + id).start(() -> {
            try {
                result.complete(launchBlocking(id));
            } catch (Throwable e) {
                result.completeExceptionally(e);
            }
        });
        return result;
    }

    private Upstream launchBlocking(int id) throws IOException, InterruptedException {
        String name = "worker " + id;
        for (int attempt = 1; ; attempt++) {
            if (closed) {
                throw new LaunchException(name + " was not started: the server is shutting down");
            }
            int port = freePort();
            long started = System.nanoTime();
            Process process = spawn(id, port);
            launching.add(process);
            Deque<String> tail = new ArrayDeque<>();
            List<Thread> readers = List.of(pipeLines(process.getInputStream(), name, tail),
                    pipeLines(process.getErrorStream(), name, tail));
            try {
                if (awaitHttp(process, port, started)) {
                    long millis = (System.nanoTime() - started) / 1_000_000;
                    log.add("valve", name + " ready in " + millis + " ms (pid " + process.pid()
                            + ", port " + port + ")");
                    return new ProcessUpstream(name, process, port);
                }
                if (!process.isAlive() && process.exitValue() == EXIT_PORT_IN_USE && attempt < PORT_ATTEMPTS) {
                    continue;
                }
                String why = process.isAlive()
                        ? "did not answer HTTP within " + settings.startupTimeout().toSeconds() + " s"
                        : "exited with status " + process.exitValue() + " before answering HTTP";
                ProcessUpstream.terminate(process, Duration.ofSeconds(2));
                throw new LaunchException(name + " " + why + describeTail(readers, tail));
            } catch (InterruptedException | RuntimeException e) {
                ProcessUpstream.terminate(process, Duration.ofSeconds(2));
                throw e;
            } finally {
                launching.remove(process);
            }
        }
    }

    private Process spawn(int id, int port) throws IOException {
        List<String> command = new ArrayList<>();
        if (Files.isExecutable(SETSID)) {
            command.add(SETSID.toString());
        }
        command.addAll(settings.command());
        ProcessBuilder builder = new ProcessBuilder(command).directory(settings.directory().toFile());
        Map<String, String> env = builder.environment();
        env.putAll(settings.environment());
        env.put("VALVE_PORT", Integer.toString(port));
        env.put("VALVE_WORKER_ID", Integer.toString(id));
        env.put("VALVE_PARENT_PID", Long.toString(ProcessHandle.current().pid()));
        Process process = builder.start();
        try (OutputStream stdin = process.getOutputStream()) {
            stdin.write((settings.secret() + "\n").getBytes(StandardCharsets.US_ASCII));
        } catch (IOException e) {
            // The worker died at once; the readiness wait reports it with its output.
        }
        return process;
    }

    /** Polls until the worker answers any HTTP status, exits, or the start-up timeout passes. */
    private boolean awaitHttp(Process process, int port, long started) throws InterruptedException {
        long deadline = started + settings.startupTimeout().toNanos();
        long pause = 20;
        while (System.nanoTime() - deadline < 0) {
            if (!process.isAlive() || closed) {
                return false;
            }
            if (HttpProbe.answers("127.0.0.1", port, settings.probePath(),
                    Duration.ofNanos(Math.max(1, deadline - System.nanoTime())))) {
                return true;
            }
            Thread.sleep(pause);
            pause = Math.min(pause * 3 / 2, 200);
        }
        return false;
    }

    private Thread pipeLines(InputStream stream, String name, Deque<String> tail) {
        return Thread.ofVirtual().name("valve-log-" + name).start(() -> {
            try (BufferedReader reader = new BufferedReader(new InputStreamReader(stream, StandardCharsets.UTF_8))) {
                String line;
                while ((line = reader.readLine()) != null) {
                    log.add(name, line);
                    synchronized (tail) {
                        if (tail.size() == TAIL_LINES) {
                            tail.pollFirst();
                        }
                        tail.addLast(line);
                    }
                }
            } catch (IOException e) {
                // The pipe closes when the worker exits; nothing left to read.
            }
        });
    }

    private static String describeTail(List<Thread> readers, Deque<String> tail) throws InterruptedException {
        // The readers end at end-of-file; a grandchild holding the pipe must not block us.
        for (Thread reader : readers) {
            reader.join(Duration.ofSeconds(1));
        }
        synchronized (tail) {
            return tail.isEmpty() ? "; it printed nothing" : ". Its last output:\n" + String.join("\n", tail);
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        }
    }

    /** Kills workers still starting; ready ones belong to the pool, which stops them itself. */
    @Override
    public void close() {
        closed = true;
        for (Process process : launching) {
            ProcessUpstream.terminate(process, Duration.ofSeconds(2));
        }
    }
}
