package dev.valve;

/**
 * Why the engine could not do what R asked. {@link #kind()} becomes the R error class
 * {@code valve_error_<kind>}, so R code can react to a cause without parsing messages.
 */
public final class ValveException extends Exception {
    private static final long serialVersionUID = 1L;

    /** The configuration was rejected. */
    public static final String CONFIG = "config";
    /** The listening address could not be bound. */
    public static final String BIND = "bind";
    /** Workers could not be started. */
    public static final String STARTUP = "startup";
    /** A reload's new workers could not start (the old ones keep serving), or there is nothing to reload. */
    public static final String RELOAD = "reload";

    private final String kind;

    ValveException(String kind, String message, Throwable cause) {
        super(message, cause);
        this.kind = kind;
    }

    public String kind() {
        return kind;
    }
}
