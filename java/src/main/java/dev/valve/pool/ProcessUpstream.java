package dev.valve.pool;

import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/** A local worker process listening on 127.0.0.1. */
final class ProcessUpstream implements Upstream {
    private final String name;
    private final Process process;
    private final int port;
    private final AtomicBoolean stopping = new AtomicBoolean();

    ProcessUpstream(String name, Process process, int port) {
        this.name = name;
        this.process = process;
        this.port = port;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String host() {
        return "127.0.0.1";
    }

    @Override
    public int port() {
        return port;
    }

    @Override
    public long pid() {
        return process.pid();
    }

    @Override
    public boolean isAlive() {
        return process.isAlive();
    }

    @Override
    public void onDeath(Runnable callback) {
        process.onExit().thenRun(() -> {
            if (!stopping.get()) {
                callback.run();
            }
        });
    }

    @Override
    public void stop(Duration grace) {
        stopping.set(true);
        terminate(process, grace);
    }

    /**
     * SIGTERM to the process and its descendants (R may have started children), SIGKILL to
     * whatever is left after {@code grace}, then waits for the exit so no zombie remains.
     */
    static void terminate(Process process, Duration grace) {
        ProcessHandle handle = process.toHandle();
        var descendants = handle.descendants().toList();
        handle.destroy();
        descendants.forEach(ProcessHandle::destroy);
        try {
            if (!process.waitFor(grace.toMillis(), TimeUnit.MILLISECONDS)) {
                handle.destroyForcibly();
                process.waitFor(grace.toMillis(), TimeUnit.MILLISECONDS);
            }
        } catch (InterruptedException e) {
            handle.destroyForcibly();
            Thread.currentThread().interrupt();
        }
        descendants.stream().filter(ProcessHandle::isAlive).forEach(ProcessHandle::destroyForcibly);
    }

    @Override
    public String toString() {
        return name + " (pid " + pid() + ", port " + port + ")";
    }
}
