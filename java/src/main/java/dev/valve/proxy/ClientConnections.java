package dev.valve.proxy;

import java.util.Set;

import io.helidon.common.buffers.BufferData;
import io.helidon.webserver.ConnectionContext;
import io.helidon.webserver.http1.Http1Config;
import io.helidon.webserver.http1.Http1ConnectionSelector;
import io.helidon.webserver.spi.ServerConnection;
import io.helidon.webserver.spi.ServerConnectionSelector;

/**
 * The listener's only connection type: every connection is a {@link ClientConnection} around
 * Helidon's HTTP/1.1 connection. Being the only one also means Helidon does not sniff the first
 * bytes itself, so a garbage request line reaches the HTTP/1 parser and gets its 400.
 */
public final class ClientConnections implements ServerConnectionSelector {
    private final Http1ConnectionSelector http1;

    /** @param http1Config the HTTP/1 parser's limits and listeners */
    public ClientConnections(Http1Config http1Config) {
        this.http1 = Http1ConnectionSelector.builder().config(http1Config).build();
    }

    @Override
    public int bytesToIdentifyConnection() {
        return 0;
    }

    @Override
    public Support supports(BufferData data) {
        return Support.SUPPORTED;
    }

    @Override
    public Set<String> supportedApplicationProtocols() {
        return Set.of("http/1.1");
    }

    @Override
    public ServerConnection connection(ConnectionContext context) {
        return new ClientConnection(context, http1::connection);
    }
}
