package dev.valve;

import java.net.URI;

import dev.valve.log.LogSink;
import dev.valve.pool.StubLauncher;
import dev.valve.pool.StubWorker;

/** The real engine on a free port, with in-process stub workers instead of R. */
final class StubEngine implements AutoCloseable {
    final StubLauncher launcher = new StubLauncher();
    final Valve valve;
    final int port;

    /** @param fields extra configuration members, each followed by a comma, e.g. {@code "\"n_max\": 1, "} */
    StubEngine(String fields) throws ValveException {
        ValveConfig config = ValveConfig.fromJson("{\"port\": 0, \"n_min\": 1, " + fields
                + "\"worker\": {\"command\": [\"unused\"]}}");
        valve = Valve.start(config, new LogSink(1000, null), launcher, "test-secret");
        port = URI.create(valve.url()).getPort();
    }

    /** The first worker launched. */
    StubWorker worker() {
        return launcher.launched.get(0);
    }

    @Override
    public void close() {
        valve.stop(0);
    }
}
