package dev.valve.pool;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import dev.valve.log.LogSink;
import dev.valve.testing.Await;
import dev.valve.worker.WorkerProtocol;
import dev.valve.worker.WorkerSpec;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The launcher's side of the worker protocol, with a shell script standing in for Rscript: it
 * records what it was given, so these tests see exactly what R would.
 */
class ProcessLauncherTest {
    private static final String SECRET = "s3cret";

    @TempDir
    Path dir;
    private final LogSink log = new LogSink(1000, null);
    private final List<ProcessLauncher> launchers = new ArrayList<>();
    private final StringBuilder logged = new StringBuilder();

    @AfterEach
    void closeLaunchers() {
        launchers.forEach(ProcessLauncher::close);
    }

    private ProcessLauncher launcher(WorkerSpec worker) {
        ProcessLauncher launcher = new ProcessLauncher(new ProcessLauncher.Settings(worker, dir.resolve("worker.R"),
                Duration.ofSeconds(60), SECRET), log);
        launchers.add(launcher);
        return launcher;
    }

    /** Serves a plumber file with an "Rscript" that runs {@code body} in sh, given the arguments R would get. */
    private WorkerSpec fileWorker(String body) throws IOException {
        Path rscript = dir.resolve("Rscript");
        Files.writeString(rscript, "#!/bin/sh\nout=" + dir + "\n" + body);
        Files.setPosixFilePermissions(rscript, PosixFilePermissions.fromString("rwx------"));
        Path api = Files.writeString(dir.resolve("plumber.R"), "# served\n");
        return new WorkerSpec(WorkerSpec.FILE, api.toString(), rscript.toString(), List.of("/lib/one", "/lib/two"),
                null, null);
    }

    private static Thread thread(String name) {
        return Thread.getAllStackTraces().keySet().stream().filter(t -> t.getName().equals(name)).findFirst()
                .orElse(null);
    }

    private long awaitPid(String file) throws IOException {
        Path pid = dir.resolve(file);
        Await.until("the worker wrote its pid", () -> Files.exists(pid) && readQuietly(pid).endsWith("\n"));
        return Long.parseLong(Files.readString(pid).trim());
    }

    private static String readQuietly(Path file) {
        try {
            return Files.readString(file);
        } catch (IOException e) {
            return "";
        }
    }

    @Test
    void aWorkerGetsTheProtocolAndIsWatchedFromPlatformThreads() throws Exception {
        ProcessLauncher launcher = launcher(fileWorker("""
                read secret
                { echo "args $*"; echo "secret $secret"; echo "pwd $(pwd)"; env | grep -E '^(VALVE_|R_LIBS=)' | sort; } > $out/seen
                echo "hello on stdout"
                echo "hello on stderr" >&2
                echo $$ > $out/pid
                exec sleep 60
                """));
        CompletableFuture<Upstream> launch = launcher.launch(7);
        long pid = awaitPid("pid");

        // Virtual threads blocked reading a pipe pin their carriers and stopped the engine (#10);
        // platform threads are listed here, virtual ones never are.
        Await.until("the worker's output is read", () -> thread("valve-log-worker 7") != null);
        Thread reader = thread("valve-log-worker 7");
        Thread starter = thread("valve-launch-7");
        assertFalse(reader.isVirtual());
        assertTrue(reader.isDaemon());
        assertFalse(starter.isVirtual());
        assertTrue(starter.isDaemon());

        List<String> seen = Files.readAllLines(dir.resolve("seen"));
        assertEquals("args --no-echo --no-restore " + dir.resolve("worker.R"), seen.get(0));
        assertEquals("secret " + SECRET, seen.get(1));
        assertEquals("pwd " + dir.toRealPath(), seen.get(2));
        List<String> env = seen.subList(3, seen.size());
        assertTrue(env.contains("R_LIBS=/lib/one" + File.pathSeparator + "/lib/two"), env.toString());
        assertTrue(env.contains("VALVE_MODE=file"), env.toString());
        assertTrue(env.contains("VALVE_PATH=" + dir.resolve("plumber.R")), env.toString());
        assertTrue(env.contains("VALVE_WORKER_ID=7"), env.toString());
        assertTrue(env.contains("VALVE_PARENT_PID=" + ProcessHandle.current().pid()), env.toString());
        assertTrue(env.stream().anyMatch(line -> line.matches("VALVE_PORT=[0-9]+")), env.toString());
        assertFalse(env.stream().anyMatch(line -> line.startsWith(WorkerProtocol.ENV_RUN_ARGS)), env.toString());

        // Both streams, merged, reach the log tagged with the worker's name.
        Await.until("both lines are logged", () -> logged().contains("[worker 7] hello on stdout")
                && logged().contains("[worker 7] hello on stderr"));

        launcher.close();
        ExecutionException failed = assertThrows(ExecutionException.class, () -> launch.get(30, TimeUnit.SECONDS));
        assertInstanceOf(LaunchException.class, failed.getCause());
        assertTrue(failed.getCause().getMessage().contains("shutting down"), failed.getCause().getMessage());
        Await.until("the worker is gone", () -> ProcessHandle.of(pid).map(h -> !h.isAlive()).orElse(true));
        Await.until("its reader ends", () -> !reader.isAlive());
    }

    /** Everything logged so far: draining empties the sink. */
    private String logged() {
        Arrays.stream(log.drain()).forEach(line -> logged.append(line).append('\n'));
        return logged.toString();
    }

    @Test
    void aWorkerThatExitsIsReportedWithItsLastOutputFromBothStreams() throws Exception {
        ProcessLauncher launcher = launcher(fileWorker("""
                echo "to stdout"
                echo "to stderr" >&2
                exit 3
                """));
        ExecutionException failed = assertThrows(ExecutionException.class,
                () -> launcher.launch(1).get(60, TimeUnit.SECONDS));
        String message = failed.getCause().getMessage();
        assertTrue(message.startsWith("worker 1 exited with status 3 before answering HTTP. Its last output:"), message);
        assertTrue(message.contains("to stdout") && message.contains("to stderr"), message);
    }

    @Test
    void aTakenPortIsRetriedOnAnotherAFewTimes() throws Exception {
        ProcessLauncher launcher = launcher(fileWorker("""
                echo "$VALVE_PORT" >> $out/ports
                exit %d
                """.formatted(WorkerProtocol.EXIT_PORT_IN_USE)));
        ExecutionException failed = assertThrows(ExecutionException.class,
                () -> launcher.launch(1).get(60, TimeUnit.SECONDS));
        assertTrue(failed.getCause().getMessage().contains("exited with status 75"), failed.getCause().getMessage());
        assertEquals(3, Files.readAllLines(dir.resolve("ports")).size());
    }

    @Test
    void closingDeletesTheFilesRHandedItAndNothingElse() throws Exception {
        Path api = Files.writeString(dir.resolve("valve-api-1.rds"), "function");
        Path runArgs = Files.writeString(dir.resolve("valve-run-args-1.rds"), "args");
        launcher(new WorkerSpec(WorkerSpec.API, api.toString(), null, null, runArgs.toString(), dir.toString()))
                .close();
        assertFalse(Files.exists(api));
        assertFalse(Files.exists(runArgs));

        WorkerSpec served = fileWorker("exit 0");
        Path keptArgs = Files.writeString(dir.resolve("valve-run-args-2.rds"), "args");
        launcher(new WorkerSpec(WorkerSpec.FILE, served.path(), null, null, keptArgs.toString(), null)).close();
        assertTrue(Files.exists(Path.of(served.path())), "a served file is the user's");
        assertFalse(Files.exists(keptArgs));
    }
}
