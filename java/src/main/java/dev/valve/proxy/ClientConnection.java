package dev.valve.proxy;

import java.io.BufferedOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.function.Supplier;

import io.helidon.common.buffers.BufferData;
import io.helidon.common.buffers.DataReader;
import io.helidon.common.buffers.DataWriter;
import io.helidon.common.concurrency.limits.Limit;
import io.helidon.common.socket.HelidonSocket;
import io.helidon.common.socket.PeerInfo;
import io.helidon.common.task.InterruptableTask;
import io.helidon.webserver.ConnectionContext;
import io.helidon.webserver.ListenerContext;
import io.helidon.webserver.ProxyProtocolData;
import io.helidon.webserver.Router;
import io.helidon.webserver.ServerConnectionException;
import io.helidon.webserver.spi.ServerConnection;

/**
 * One client connection: Helidon's HTTP/1.1 connection, reading the socket through valve.
 *
 * <p>Owning the reads gives valve two things Helidon's connection cannot: HTTP/1.0 requests are
 * rewritten for the HTTP/1.1 parser ({@link RequestRewriter}), and while a request waits in the
 * queue the socket can be watched for the client hanging up ({@link #onHangUp}). Helidon handles
 * each HTTP/1 connection's requests on the connection's own thread, which is how the proxy finds
 * the connection it is serving ({@link #current()}).
 */
final class ClientConnection implements ServerConnection, InterruptableTask<Void> {
    private static final ThreadLocal<ClientConnection> CURRENT = new ThreadLocal<>();

    private final ServerConnection http1;
    private final Input input;
    private final DataReader reader;
    private final ConnectionContext socketContext;

    /** @param http1 makes Helidon's HTTP/1 connection for a context */
    ClientConnection(ConnectionContext socketContext, java.util.function.Function<ConnectionContext, ServerConnection> http1) {
        this.socketContext = socketContext;
        this.input = new Input(socketContext);
        this.reader = DataReader.create(input);
        this.http1 = http1.apply(new Context(socketContext, reader));
    }

    /** The connection whose request this thread is handling, or null outside a request. */
    static ClientConnection current() {
        return CURRENT.get();
    }

    /**
     * Runs {@code callback} once if the client hangs up (or the connection fails) before it sends
     * anything more. Only for a request that has been read completely and is waiting: the read
     * this starts is handed to the parser afterwards, so nothing the client sends is lost.
     */
    void onHangUp(Runnable callback) {
        input.watch().whenComplete((bytes, error) -> {
            if (bytes == null) {
                callback.run();
            }
        });
    }

    /**
     * The connection's raw bytes, for a WebSocket once its upgrade was answered: what the client
     * sent after the request's head (already read by the parser, or still in the socket), and
     * writes that go to the socket at once. After this the connection serves no more requests:
     * the handler ends it.
     */
    WebSocketTunnel.End takeOver() {
        InputStream in = new BlockInputStream() {
            @Override
            public int read() {
                try {
                    reader.ensureAvailable();
                } catch (DataReader.InsufficientDataAvailableException e) {
                    return -1;
                }
                return reader.read() & 0xFF;
            }

            @Override
            public int read(byte[] buffer, int offset, int length) {
                if (length == 0) {
                    return 0;
                }
                try {
                    reader.ensureAvailable();
                } catch (DataReader.InsufficientDataAvailableException e) {
                    return -1;
                }
                int count = Math.min(length, reader.available());
                System.arraycopy(reader.readBytes(count), 0, buffer, offset, count);
                return count;
            }

            @Override
            public int available() {
                return reader.available();
            }
        };
        DataWriter writer = socketContext.dataWriter();
        OutputStream out = new OutputStream() {
            @Override
            public void write(int b) {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] bytes, int offset, int length) {
                // Written before writeNow returns, so the caller's array needs no copy.
                writer.writeNow(BufferData.create(bytes, offset, length));
            }
        };
        return new WebSocketTunnel.End(in, new BufferedOutputStream(out, 16 * 1024), socketContext.serverSocket()::close);
    }

    @Override
    public void handle(Limit limit) throws InterruptedException {
        CURRENT.set(this);
        try {
            http1.handle(limit);
        } finally {
            CURRENT.remove();
        }
    }

    @Override
    public Duration idleTime() {
        return http1.idleTime();
    }

    @Override
    public void close(boolean interrupt) {
        http1.close(interrupt);
    }

    @Override
    public boolean canInterrupt() {
        return http1 instanceof InterruptableTask<?> task && task.canInterrupt();
    }

    /** The socket's bytes for the parser: a watched read first, when there is one. */
    private static final class Input implements Supplier<byte[]> {
        private final DataReader alreadyRead;
        private final HelidonSocket socket;
        private final RequestRewriter rewriter;
        /** Touched only by the connection's thread; the watch's own thread only completes it. */
        private CompletableFuture<byte[]> watched;

        Input(ConnectionContext context) {
            this.alreadyRead = context.dataReader();
            this.socket = context.serverSocket();
            this.rewriter = new RequestRewriter(authority(context.localPeer()));
        }

        @Override
        public byte[] get() {
            byte[] raw;
            if (watched != null) {
                CompletableFuture<byte[]> pending = watched;
                watched = null;
                raw = await(pending);
            } else {
                raw = readSocket();
            }
            return raw == null ? null : rewriter.apply(raw);
        }

        CompletableFuture<byte[]> watch() {
            if (watched == null) {
                watched = new CompletableFuture<>();
                CompletableFuture<byte[]> target = watched;
                Thread.ofVirtual().name("valve-hang-up-watch").start(() -> {
                    try {
                        target.complete(readSocket());
                    } catch (RuntimeException e) {
                        target.completeExceptionally(e);
                    }
                });
            }
            return watched;
        }

        /** The bytes Helidon had already taken to choose this connection type, then the socket. */
        private byte[] readSocket() {
            if (alreadyRead.available() > 0) {
                return alreadyRead.readBytes(alreadyRead.available());
            }
            try {
                return socket.get();
            } catch (UncheckedIOException e) {
                throw new ServerConnectionException("failed to read from the client", e);
            }
        }

        private byte[] await(CompletableFuture<byte[]> pending) {
            try {
                return pending.get();
            } catch (InterruptedException e) {
                // Helidon interrupts a connection's thread to close it (idle, stalled, stopping):
                // a socket read would have ended the same way.
                socket.close();
                Thread.currentThread().interrupt();
                throw new ServerConnectionException("interrupted while reading", e);
            } catch (ExecutionException e) {
                throw e.getCause() instanceof RuntimeException runtime
                        ? runtime
                        : new ServerConnectionException("failed to read from the client", e.getCause());
            }
        }

        private static String authority(PeerInfo local) {
            SocketAddress address = local.address();
            if (address instanceof InetSocketAddress inet) {
                String host = inet.getAddress().getHostAddress();
                return (host.contains(":") ? "[" + host + "]" : host) + ":" + inet.getPort();
            }
            return "localhost";
        }
    }

    /** Helidon's connection context with valve's reader in place of the socket's. */
    private record Context(ConnectionContext delegate, DataReader reader) implements ConnectionContext {
        @Override
        public ListenerContext listenerContext() {
            return delegate.listenerContext();
        }

        @Override
        public ExecutorService executor() {
            return delegate.executor();
        }

        @Override
        public DataWriter dataWriter() {
            return delegate.dataWriter();
        }

        @Override
        public DataReader dataReader() {
            return reader;
        }

        @Override
        public Router router() {
            return delegate.router();
        }

        @Override
        public Optional<ProxyProtocolData> proxyProtocolData() {
            return delegate.proxyProtocolData();
        }

        @Override
        public HelidonSocket serverSocket() {
            return delegate.serverSocket();
        }

        @Override
        public PeerInfo remotePeer() {
            return delegate.remotePeer();
        }

        @Override
        public PeerInfo localPeer() {
            return delegate.localPeer();
        }

        @Override
        public boolean isSecure() {
            return delegate.isSecure();
        }

        @Override
        public String socketId() {
            return delegate.socketId();
        }

        @Override
        public String childSocketId() {
            return delegate.childSocketId();
        }
    }
}
