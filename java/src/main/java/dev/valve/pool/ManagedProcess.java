package dev.valve.pool;

import java.time.Duration;

/** The life cycle of an upstream this engine runs itself, such as a local R worker process. */
public interface ManagedProcess {

    /** Operating-system process id. */
    long pid();

    boolean isAlive();

    /**
     * Resident memory in bytes, or -1 when it cannot be read (the process is gone, or the
     * platform has no {@code /proc}). Cheap enough to call after every request.
     */
    long residentBytes();

    /**
     * Runs {@code callback} once when the process has exited, whatever the reason; on the
     * caller's thread, at once, when it already has.
     */
    void onExit(Runnable callback);

    /**
     * Stops the process, politely first and forcibly after {@code grace}, and waits a bounded
     * time for it to exit. Blocks: call it on a platform thread. Idempotent.
     */
    void stop(Duration grace);
}
