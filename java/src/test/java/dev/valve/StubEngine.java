package dev.valve;

import java.net.URI;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import dev.valve.log.LogSink;
import dev.valve.testing.StubLauncher;
import dev.valve.testing.StubWorker;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;

/** The real engine on a free port, with in-process stub workers instead of R. */
final class StubEngine implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

    final StubLauncher launcher = new StubLauncher();
    final Valve valve;
    final int port;

    /** @param overrides configuration members by their snake_case name, e.g. {@code Map.of("n_max", 1)} */
    StubEngine(Map<String, ?> overrides) throws ValveException {
        Map<String, Object> members = new LinkedHashMap<>();
        members.put("port", 0);
        members.put("n_min", 1);
        // Never spawned: the stub launcher stands in for R. A directory that exists makes it valid.
        members.put("worker", Map.of("mode", "dir", "path", Path.of(System.getProperty("java.io.tmpdir"))
                .toAbsolutePath().toString()));
        members.putAll(overrides);
        // Through JSON, as R sends it.
        ValveConfig config = ValveConfig.fromJson(json(members));
        valve = Valve.start(config, new LogSink(1000, null), launcher, "test-secret");
        port = URI.create(valve.url()).getPort();
    }

    private static String json(Map<String, Object> members) {
        try {
            return JSON.writeValueAsString(members);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
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
