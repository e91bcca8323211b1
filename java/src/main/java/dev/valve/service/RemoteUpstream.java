package dev.valve.service;

import java.net.InetAddress;

import dev.valve.pool.Upstream;

/**
 * One request slot on a pod. A pod that takes {@code per_pod} requests at once is admitted as
 * that many slots, so the pool's one-request-per-upstream rule does the counting. A pod is not
 * our process: it has no {@link Upstream#process() process}, Kubernetes runs it.
 *
 * <p>Equality is identity on purpose: a pod that left and came back is a new set of slots, even
 * while an old slot still finishes its last request.
 */
final class RemoteUpstream implements Upstream {
    private final InetAddress address;
    private final int port;
    private final String name;

    RemoteUpstream(InetAddress address, int port, int slot, int slots) {
        this.address = address;
        this.port = port;
        this.name = "pod " + address.getHostAddress() + ":" + port + (slots > 1 ? " #" + slot : "");
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
    public String toString() {
        return name;
    }
}
