package dev.valve;

import java.util.HashMap;
import java.util.Map;

import dev.valve.testing.StubLauncher;
import dev.valve.testing.StubWorker;

import org.junit.jupiter.api.AfterEach;

/** Tests that start a fresh engine with stub workers per test, and stop it after. */
abstract class StubEngineTest {
    private StubEngine engine;
    protected StubLauncher launcher;
    protected Valve valve;
    protected int port;

    /** Configuration members every test of the class starts with, by their snake_case name. */
    protected abstract Map<String, Object> defaults();

    protected void start() throws ValveException {
        start(Map.of());
    }

    /** @param overrides members that replace or add to {@link #defaults()} for one test */
    protected void start(Map<String, Object> overrides) throws ValveException {
        Map<String, Object> members = new HashMap<>(defaults());
        members.putAll(overrides);
        engine = new StubEngine(members);
        launcher = engine.launcher;
        valve = engine.valve;
        port = engine.port;
    }

    protected StubWorker worker() {
        return engine.worker();
    }

    @AfterEach
    void stopEngine() {
        if (engine != null) {
            engine.close();
        }
    }
}
