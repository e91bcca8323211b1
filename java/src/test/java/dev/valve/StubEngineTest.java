package dev.valve;

import dev.valve.pool.StubLauncher;
import dev.valve.pool.StubWorker;

import org.junit.jupiter.api.AfterEach;

/** Tests that start a fresh engine with stub workers per test, and stop it after. */
abstract class StubEngineTest {
    private StubEngine engine;
    protected StubLauncher launcher;
    protected Valve valve;
    protected int port;

    /** Configuration members every test of the class starts with, each followed by a comma. */
    protected abstract String defaults();

    protected void start(String extraJson) throws ValveException {
        engine = new StubEngine(defaults() + extraJson);
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
