package dev.valve.pool;

/** Why a worker the pool launched left it; the metrics count exits by reason. */
public enum ExitReason {
    /** Idle for longer than {@code max_age}, above {@code n_min}. */
    IDLE_REAP("idle_reap"),
    /** Its process exited on its own. */
    CRASH("crash"),
    /** Silent on a request for longer than {@code request_timeout}: stopped and replaced. */
    TIMEOUT_KILL("timeout_kill"),
    /** A request on it failed in another way (a broken connection, invalid HTTP): stopped and replaced. */
    FAILED_REQUEST("failed_request"),
    /** It served {@code max_requests} (plus jitter), or grew past {@code max_worker_memory}. */
    RECYCLE("recycle"),
    /** A reload replaced it with a worker running the current code. */
    RELOAD("reload"),
    /** The pool closed. */
    STOP("stop");

    /** The value of the metrics' {@code reason} label. */
    public final String label;

    ExitReason(String label) {
        this.label = label;
    }
}
