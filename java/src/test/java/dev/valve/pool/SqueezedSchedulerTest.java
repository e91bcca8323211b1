package dev.valve.pool;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import dev.valve.testing.Await;
import dev.valve.testing.RawHttp;
import dev.valve.testing.StubWorker;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Start, serve and stop with one virtual-thread carrier, as in a JVM started with
 * {@code -Djdk.virtualThreadScheduler.parallelism=1 -Djdk.virtualThreadScheduler.maxPoolSize=1}
 * (its own Surefire fork: the scheduler reads them only at JVM start; without them the test
 * passes too, proving less).
 *
 * <p>Each worker is a real process that ignores SIGTERM: on it, it asks for a line on its
 * standard input and exits 0 once it gets one. A virtual thread sends that line while the pool is
 * stopping the worker. If the stop's wait held the only carrier (as {@code Process.waitFor} on a
 * virtual thread does in JDK 21), that virtual thread could not run before the stop's SIGKILL,
 * and the worker's exit status would say so. Its HTTP side is an in-process {@link StubWorker},
 * whose threads are virtual as well.
 */
class SqueezedSchedulerTest {
    private static final Duration DEADLINE = Duration.ofSeconds(30);
    private static final String SCRIPT =
            "trap 'echo term; read line; exit 0' TERM; echo ready; while :; do sleep 1; done";

    private final List<Worker> workers = new CopyOnWriteArrayList<>();
    private final List<String> events = new CopyOnWriteArrayList<>();
    private WorkerPool pool;

    /** A real process for the life cycle, a stub for HTTP, and the platform thread reading its output. */
    private record Worker(Process process, StubWorker http, Thread reader) {
    }

    private final UpstreamLauncher launcher = id -> {
        CompletableFuture<Upstream> ready = new CompletableFuture<>();
        try {
            StubWorker http = new StubWorker(id);
            Process process = new ProcessBuilder("/bin/sh", "-c", SCRIPT).redirectErrorStream(true).start();
            Thread reader = Thread.ofPlatform().daemon().name("test-worker-" + id).start(
                    () -> follow(process, new ProcessUpstream("worker " + id, process.toHandle(), http.port()), ready));
            workers.add(new Worker(process, http, reader));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return ready;
    };

    /** Completes the launch on "ready"; on "term", answers from a virtual thread. */
    private static void follow(Process process, Upstream upstream, CompletableFuture<Upstream> ready) {
        try (BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(),
                StandardCharsets.UTF_8))) {
            String line;
            while ((line = out.readLine()) != null) {
                if (line.equals("ready")) {
                    ready.complete(upstream);
                } else if (line.equals("term")) {
                    Thread.ofVirtual().start(() -> {
                        try {
                            OutputStream in = process.getOutputStream();
                            in.write("go\n".getBytes(StandardCharsets.US_ASCII));
                            in.flush();
                        } catch (IOException e) {
                            // Already gone: its exit status tells the test.
                        }
                    });
                }
            }
        } catch (IOException e) {
            // The process ended.
        }
        ready.completeExceptionally(new LaunchException(upstream.name() + " ended before it was ready"));
    }

    @AfterEach
    void cleanUp() throws InterruptedException {
        if (pool != null) {
            pool.close();
        }
        for (Worker worker : workers) {
            worker.process().destroyForcibly();
            worker.http().stop(Duration.ZERO);
            Await.joined(worker.reader());
        }
    }

    @Test
    void startServeAndStopNeverHoldTheOnlyCarrier() throws Exception {
        pool = new WorkerPool(new PoolConfig(2, 3, Duration.ofMinutes(5), Duration.ofMinutes(5), 100, DEADLINE),
                launcher, events::add);
        pool.start().get(DEADLINE.toSeconds(), TimeUnit.SECONDS);

        AtomicInteger ok = new AtomicInteger();
        List<Thread> clients = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            clients.add(Thread.ofVirtual().start(() -> {
                for (int j = 0; j < 3; j++) {
                    try (Lease lease = pool.acquire()) {
                        if (RawHttp.get(lease.upstream().port(), "/sleep?ms=5").status() == 200) {
                            ok.incrementAndGet();
                        }
                    } catch (PoolException | IOException e) {
                        throw new AssertionError(e);
                    }
                }
            }));
        }
        for (Thread client : clients) {
            Await.joined(client);
        }
        assertEquals(24, ok.get());
        for (Worker worker : workers) {
            assertTrue(worker.http().maxInFlight.get() <= 1, "two requests at once on " + worker);
        }

        // A failed request: the pool stops that worker while requests go on.
        Lease failing = pool.acquire();
        Process stopped = workerOf(failing.upstream()).process();
        failing.discard();
        assertExitedOnItsOwn(stopped);
        pool.acquire().release();

        Thread closer = Thread.ofVirtual().start(() -> pool.close(Duration.ofSeconds(5)));
        Await.joined(closer);
        for (Worker worker : workers) {
            assertExitedOnItsOwn(worker.process());
        }
        assertFalse(events.stream().anyMatch(e -> e.contains("had not exited")), events.toString());
    }

    private Worker workerOf(Upstream upstream) {
        return workers.stream().filter(w -> w.http().port() == upstream.port()).findFirst().orElseThrow();
    }

    private static void assertExitedOnItsOwn(Process process) throws Exception {
        process.onExit().get(DEADLINE.toSeconds(), TimeUnit.SECONDS);
        assertEquals(0, process.exitValue(),
                "the worker was killed: nothing answered it while it was being stopped");
    }

}
