package dev.valve.service;

import java.net.InetAddress;
import java.time.Duration;
import java.util.function.Consumer;

import dev.valve.pool.Upstream;

/**
 * One request slot on a pod. A pod that takes {@code per_pod} requests at once is admitted as
 * that many slots, so the pool's one-request-per-upstream rule does the counting.
 */
final class RemoteUpstream implements Upstream {
    private final InetAddress address;
    private final int port;
    private final String name;
    private final Consumer<RemoteUpstream> onFailure;

    RemoteUpstream(InetAddress address, int port, int slot, int slots, Consumer<RemoteUpstream> onFailure) {
        this.address = address;
        this.port = port;
        this.name = "pod " + address.getHostAddress() + ":" + port + (slots > 1 ? " #" + slot : "");
        this.onFailure = onFailure;
    }

    InetAddress address() {
        return address;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String host() {
        return address.getHostAddress();
    }

    @Override
    public int port() {
        return port;
    }

    @Override
    public long pid() {
        return -1;
    }

    @Override
    public boolean isAlive() {
        return true;
    }

    @Override
    public void onDeath(Runnable callback) {
        // A pod is not a child process: failures show up as failed requests instead.
    }

    /** The pool stops an upstream after a failed request: for a pod, that means "suspect it". */
    @Override
    public void stop(Duration grace) {
        onFailure.accept(this);
    }

    @Override
    public String toString() {
        return name;
    }
}
