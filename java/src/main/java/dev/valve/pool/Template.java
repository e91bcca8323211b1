package dev.valve.pool;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BooleanSupplier;

import dev.valve.log.LogSink;
import dev.valve.worker.WorkerProtocol;

/**
 * The R process preforked workers come from ({@code preload}): it loads plumber and the API
 * once, and forks a worker per {@link WorkerProtocol#forkCommand fork command} on its stdin,
 * answering with the worker's pid on stdout. Forks share its memory copy-on-write and outlive
 * it: stopping or losing the template never stops a worker. Their output reaches the engine
 * through the template's pipe, so it is logged under the tag {@value #TAG}.
 *
 * <p>Everything here blocks (pipes, waits), so it runs on platform threads.
 */
final class Template {
    static final String TAG = "preload";
    private static final Duration STOP_GRACE = Duration.ofSeconds(2);
    private static final long READY_POLL_MILLIS = 50;

    private final Process process;
    private final Tail tail = new Tail();
    private final CompletableFuture<Void> ready = new CompletableFuture<>();
    private final Map<Integer, CompletableFuture<Long>> forks = new ConcurrentHashMap<>();
    /** Fork commands are lines on one pipe: one writer at a time. */
    private final ReentrantLock commands = new ReentrantLock();

    private Template(Process process) {
        this.process = process;
    }

    /** Spawns a template, hands it the secret, and reads its output; {@link #awaitReady} waits for it. */
    static Template start(ProcessLauncher.Settings settings, LogSink log) throws IOException {
        ProcessBuilder builder = ProcessLauncher.builder(settings);
        WorkerProtocol.applyTemplateEnvironment(builder.environment(), settings.worker());
        Template template = new Template(builder.start());
        try {
            WorkerProtocol.writeTemplateSecret(template.process.getOutputStream(), settings.secret());
        } catch (IOException e) {
            // It died at once; awaitReady reports it with its output.
        }
        ProcessLauncher.pipeLines(template.process.getInputStream(), "template", line -> template.read(line, log));
        template.process.onExit().thenRun(template::exited);
        log.add("valve", "starting the preload template (pid " + template.pid() + ")");
        return template;
    }

    private void read(String line, LogSink log) {
        if (line.equals(WorkerProtocol.TEMPLATE_READY)) {
            ready.complete(null);
        } else if (line.startsWith(WorkerProtocol.FORKED)) {
            String[] fields = line.substring(WorkerProtocol.FORKED.length()).split(" ");
            CompletableFuture<Long> fork = forks.remove(Integer.parseInt(fields[0]));
            if (fork != null) {
                fork.complete(Long.parseLong(fields[1]));
            }
        } else {
            log.add(TAG, line);
            tail.add(line);
        }
    }

    private void exited() {
        LaunchException gone = new LaunchException("the preload template exited" + tail.describe());
        ready.completeExceptionally(gone);
        forks.values().forEach(fork -> fork.completeExceptionally(gone));
    }

    long pid() {
        return process.pid();
    }

    Process process() {
        return process;
    }

    boolean isAlive() {
        return process.isAlive();
    }

    /** @throws LaunchException with the template's output when it exits or stays silent too long */
    void awaitReady(Duration timeout, BooleanSupplier abandoned) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!ready.isDone() && System.nanoTime() - deadline < 0 && !abandoned.getAsBoolean()) {
            try {
                ready.get(READY_POLL_MILLIS, TimeUnit.MILLISECONDS);
            } catch (TimeoutException | ExecutionException e) {
                // Looked at below.
            }
        }
        if (ready.isDone() && !ready.isCompletedExceptionally()) {
            return;
        }
        stop();
        String why = abandoned.getAsBoolean() ? "was stopped while loading the API: the server is shutting down"
                : ready.isDone() ? "exited while loading the API"
                : "did not load the API within " + timeout.toSeconds() + " s";
        throw new LaunchException("the preload template " + why + tail.describe());
    }

    /**
     * Asks for a worker serving on {@code port} and returns it once forked (it still has to bind
     * its port).
     *
     * @throws LaunchException when the template is gone or does not answer within {@code timeout}
     */
    ProcessHandle fork(int id, int port, Duration timeout) throws InterruptedException {
        CompletableFuture<Long> pid = new CompletableFuture<>();
        forks.put(id, pid);
        commands.lock();
        try {
            OutputStream stdin = process.getOutputStream();
            stdin.write(WorkerProtocol.forkCommand(id, port).getBytes(StandardCharsets.US_ASCII));
            stdin.flush();
        } catch (IOException e) {
            forks.remove(id);
            throw new LaunchException("the preload template is gone: " + e.getMessage(), e);
        } finally {
            commands.unlock();
        }
        try {
            long forked = pid.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
            return ProcessHandle.of(forked).orElseThrow(() -> new LaunchException(
                    "worker " + id + " exited as soon as it was forked" + tail.describe()));
        } catch (ExecutionException e) {
            throw e.getCause() instanceof LaunchException le ? le : new LaunchException(e.getCause().toString(), e);
        } catch (TimeoutException e) {
            forks.remove(id);
            throw new LaunchException("the preload template did not fork worker " + id + " within "
                    + timeout.toSeconds() + " s" + tail.describe());
        }
    }

    String describeOutput() {
        return tail.describe();
    }

    /**
     * Stops the template alone, by signal: closing its stdin would make it quit R, and R's exit
     * kills its forks. Bounded.
     */
    void stop() {
        process.destroy();
        try {
            if (!ProcessUpstream.exits(process.toHandle(), STOP_GRACE)) {
                process.destroyForcibly();
                ProcessUpstream.exits(process.toHandle(), STOP_GRACE);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }
}
