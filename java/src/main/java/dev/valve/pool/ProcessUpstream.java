package dev.valve.pool;

import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** A local worker process listening on 127.0.0.1. */
final class ProcessUpstream implements Upstream, ManagedProcess {
    private final String name;
    private final Process process;
    private final int port;

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
    public Optional<ManagedProcess> process() {
        return Optional.of(this);
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
    public void onExit(Runnable callback) {
        process.onExit().thenRun(callback);
    }

    @Override
    public void stop(Duration grace) {
        terminate(process, grace);
    }

    /**
     * SIGTERM to the process and its descendants (R may have started children), SIGKILL to
     * whatever is left after {@code grace}, then waits up to {@code grace} again for the exit so
     * no zombie remains. Returns within about twice {@code grace} whatever the process does.
     */
    static void terminate(Process process, Duration grace) {
        ProcessHandle handle = process.toHandle();
        List<ProcessHandle> descendants = handle.descendants().toList();
        handle.destroy();
        descendants.forEach(ProcessHandle::destroy);
        try {
            if (!exits(process, grace)) {
                handle.destroyForcibly();
                exits(process, grace);
            }
        } catch (InterruptedException e) {
            handle.destroyForcibly();
            Thread.currentThread().interrupt();
        }
        descendants.stream().filter(ProcessHandle::isAlive).forEach(ProcessHandle::destroyForcibly);
    }

    /**
     * Waits through {@link Process#onExit()}: its future is completed by the JDK's reaper thread,
     * whereas {@link Process#waitFor(long, TimeUnit)} waits in a monitor, which in JDK 21 pins a
     * virtual thread's carrier for the whole wait.
     */
    private static boolean exits(Process process, Duration within) throws InterruptedException {
        try {
            process.onExit().get(Math.max(1, within.toNanos()), TimeUnit.NANOSECONDS);
            return true;
        } catch (TimeoutException e) {
            return false;
        } catch (ExecutionException e) {
            return !process.isAlive();
        }
    }

    @Override
    public String toString() {
        return name + " (pid " + pid() + ", port " + port + ")";
    }
}
