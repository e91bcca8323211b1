package dev.valve.pool;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A local worker process listening on 127.0.0.1: one the engine spawned, or one the preload
 * template forked (not the engine's child, so known by its pid alone).
 */
final class ProcessUpstream implements Upstream, ManagedProcess {
    private final String name;
    private final ProcessHandle process;
    private final int port;

    ProcessUpstream(String name, ProcessHandle process, int port) {
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

    /**
     * {@code VmRSS} of {@code /proc/<pid>/status}: a small read from memory, not from a disk, so it
     * is cheap on a request's thread. In kB there, unlike {@code statm}'s pages of unknown size.
     */
    @Override
    public long residentBytes() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc", Long.toString(pid()), "status"))) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (IOException | NumberFormatException e) {
            // Gone, or no /proc here: unknown.
        }
        return -1;
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
    static void terminate(ProcessHandle handle, Duration grace) {
        List<ProcessHandle> descendants = handle.descendants().toList();
        handle.destroy();
        descendants.forEach(ProcessHandle::destroy);
        try {
            if (!exits(handle, grace)) {
                handle.destroyForcibly();
                exits(handle, grace);
            }
        } catch (InterruptedException e) {
            handle.destroyForcibly();
            Thread.currentThread().interrupt();
        }
        descendants.stream().filter(ProcessHandle::isAlive).forEach(ProcessHandle::destroyForcibly);
    }

    /**
     * Waits through {@link ProcessHandle#onExit()}: its future is completed by the JDK's own
     * threads, whereas {@link Process#waitFor(long, TimeUnit)} waits in a monitor, which in JDK 21
     * pins a virtual thread's carrier for the whole wait.
     */
    static boolean exits(ProcessHandle process, Duration within) throws InterruptedException {
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
