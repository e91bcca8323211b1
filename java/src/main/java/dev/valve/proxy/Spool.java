package dev.valve.proxy;

import java.io.Closeable;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A byte pipe between one writer and one reader that never blocks the writer: unread bytes stay
 * in memory up to a limit and go to an unlinked temporary file beyond it.
 *
 * <p>This is what lets the engine take a whole request body from a slow client before leasing a
 * worker, and take a response from a worker as fast as R writes it while a slow client is fed at
 * its own pace, without holding large bodies in memory.
 *
 * <p>Order is kept because bytes go to the file whenever the file still has unread bytes, and
 * memory is always read before the file.
 */
final class Spool implements Closeable {
    private final int memoryLimit;
    private final MemoryBudget budget;
    private final Path directory;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private final Deque<byte[]> chunks = new ArrayDeque<>();
    private int headOffset;
    private long memoryBytes;
    private FileChannel file;
    private long fileRead;
    private long fileWrite;
    private long written;
    private boolean finished;
    private boolean closed;
    private IOException failure;

    /**
     * @param memoryLimit unread bytes kept in memory before spilling to disk
     * @param budget      memory shared by every spool; when it is spent, bytes go to disk too
     * @param directory   where the temporary file is created
     */
    Spool(int memoryLimit, MemoryBudget budget, Path directory) {
        this.memoryLimit = memoryLimit;
        this.budget = budget;
        this.directory = directory;
    }

    /** Appends bytes; never waits for the reader. Writes after {@link #close()} are dropped. */
    void write(byte[] bytes, int offset, int length) throws IOException {
        if (length == 0) {
            return;
        }
        lock.lock();
        try {
            if (closed) {
                return;
            }
            if (fileWrite > fileRead || memoryBytes + length > memoryLimit || !budget.reserve(length)) {
                if (file == null) {
                    file = openTempFile(directory);
                }
                file.write(ByteBuffer.wrap(bytes, offset, length), fileWrite);
                fileWrite += length;
            } else {
                chunks.addLast(Arrays.copyOfRange(bytes, offset, offset + length));
                memoryBytes += length;
            }
            written += length;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Marks the end of the data: the reader sees end-of-stream after the last byte. */
    void finish() {
        lock.lock();
        try {
            finished = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Marks the data as broken: the reader gets {@code cause} after the bytes already written. */
    void fail(IOException cause) {
        lock.lock();
        try {
            failure = cause;
            finished = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Whether any bytes went to the temporary file. */
    boolean spilled() {
        lock.lock();
        try {
            return file != null;
        } finally {
            lock.unlock();
        }
    }

    /** Bytes written so far. */
    long size() {
        lock.lock();
        try {
            return written;
        } finally {
            lock.unlock();
        }
    }

    /** Waits for the writer to finish and returns the total size; the data stays to be read. */
    long awaitEnd() throws IOException {
        lock.lock();
        try {
            while (!finished && !closed) {
                changed.await();
            }
            if (closed || failure != null) {
                throw new IOException("upstream response broke off", failure);
            }
            return written;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for data");
        } finally {
            lock.unlock();
        }
    }

    /** Reads at least one byte, waiting for the writer; -1 at the end of the data. */
    int read(byte[] target, int offset, int length) throws IOException {
        lock.lock();
        try {
            while (true) {
                if (closed) {
                    throw new IOException("spool closed");
                }
                if (!chunks.isEmpty()) {
                    return readMemory(target, offset, length);
                }
                if (fileWrite > fileRead) {
                    return readFile(target, offset, length);
                }
                if (finished) {
                    if (failure != null) {
                        throw new IOException("upstream response broke off: " + failure.getMessage(), failure);
                    }
                    return -1;
                }
                changed.await();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for data");
        } finally {
            lock.unlock();
        }
    }

    /** Whether a read would return without waiting. */
    boolean hasUnread() {
        lock.lock();
        try {
            return !chunks.isEmpty() || fileWrite > fileRead || finished;
        } finally {
            lock.unlock();
        }
    }

    private int readMemory(byte[] target, int offset, int length) {
        byte[] head = chunks.peekFirst();
        int count = Math.min(length, head.length - headOffset);
        System.arraycopy(head, headOffset, target, offset, count);
        headOffset += count;
        memoryBytes -= count;
        budget.release(count);
        if (headOffset == head.length) {
            chunks.pollFirst();
            headOffset = 0;
        }
        return count;
    }

    private int readFile(byte[] target, int offset, int length) throws IOException {
        int wanted = (int) Math.min(length, fileWrite - fileRead);
        int count = file.read(ByteBuffer.wrap(target, offset, wanted), fileRead);
        if (count <= 0) {
            throw new IOException("temporary file ended early");
        }
        fileRead += count;
        if (fileRead == fileWrite) {
            // Drained: reuse the file from its start rather than letting it grow.
            fileRead = 0;
            fileWrite = 0;
        }
        return count;
    }

    /**
     * Writes all the data of a finished spool to {@code out} without consuming it, so a request
     * body can be sent again. Chunks held in memory are written as they are, without a copy.
     */
    void writeTo(OutputStream out) throws IOException {
        List<byte[]> memory;
        int offset;
        long fileStart;
        long fileEnd;
        FileChannel source;
        lock.lock();
        try {
            if (!finished || closed || failure != null) {
                throw new IOException("only a complete body can be written out");
            }
            memory = List.copyOf(chunks);
            offset = headOffset;
            source = file;
            fileStart = fileRead;
            fileEnd = fileWrite;
        } finally {
            lock.unlock();
        }
        for (byte[] chunk : memory) {
            out.write(chunk, offset, chunk.length - offset);
            offset = 0;
        }
        if (source != null && fileEnd > fileStart) {
            byte[] buffer = Buffers.take();
            try {
                for (long position = fileStart; position < fileEnd; ) {
                    int count = source.read(ByteBuffer.wrap(buffer, 0, (int) Math.min(buffer.length, fileEnd - position)),
                            position);
                    if (count <= 0) {
                        throw new IOException("temporary file ended early");
                    }
                    out.write(buffer, 0, count);
                    position += count;
                }
            } finally {
                Buffers.give(buffer);
            }
        }
    }

    /** Copies everything to {@code out}, flushing whenever the reader has caught up with the writer. */
    void transferTo(OutputStream out) throws IOException {
        byte[] buffer = Buffers.take();
        try {
            int count;
            while ((count = read(buffer, 0, buffer.length)) >= 0) {
                out.write(buffer, 0, count);
                if (!hasUnread()) {
                    out.flush();
                }
            }
        } finally {
            Buffers.give(buffer);
        }
    }

    /**
     * Fills the spool from {@code in} up to {@code limit} bytes, then finishes it.
     *
     * @param length the body's length when the client declared it, else -1: a declared body that
     *               fits in memory is read straight into one array, the copy that goes to the worker
     */
    void fill(InputStream in, long length, long limit) throws IOException {
        if (length > limit) {
            throw new BodyTooLargeException(limit);
        }
        if (length > 0 && length <= memoryLimit && budget.reserve(length)) {
            fillWhole(in, (int) length);
            return;
        }
        byte[] buffer = Buffers.take();
        try {
            int count;
            while ((count = in.read(buffer)) >= 0) {
                if (written + count > limit) {
                    throw new BodyTooLargeException(limit);
                }
                write(buffer, 0, count);
            }
            finish();
        } finally {
            Buffers.give(buffer);
        }
    }

    private void fillWhole(InputStream in, int length) throws IOException {
        byte[] body;
        try {
            body = new byte[length];
            int count = in.readNBytes(body, 0, length);
            if (count < length || in.read() >= 0) {
                throw new EOFException("the request body did not match its Content-Length");
            }
        } catch (IOException | RuntimeException | Error e) {
            budget.release(length);
            throw e;
        }
        lock.lock();
        try {
            if (closed) {
                budget.release(length);
                return;
            }
            chunks.addLast(body);
            memoryBytes += length;
            written += length;
            finished = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Frees the memory and the temporary file; a waiting reader is woken with an error. */
    @Override
    public void close() throws IOException {
        FileChannel toClose;
        lock.lock();
        try {
            closed = true;
            chunks.clear();
            budget.release(memoryBytes);
            memoryBytes = 0;
            toClose = file;
            file = null;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
        if (toClose != null) {
            toClose.close();
        }
    }

    private static FileChannel openTempFile(Path directory) throws IOException {
        Path path = Files.createTempFile(directory, "valve-", ".spool");
        FileChannel channel = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
        // Unlinked at once: the space is freed when the channel closes, even if the engine is killed.
        Files.delete(path);
        return channel;
    }

    /** A body went past {@code max_body_size}. */
    static final class BodyTooLargeException extends IOException {
        private static final long serialVersionUID = 1L;

        BodyTooLargeException(long limit) {
            super("the request body is larger than max_body_size (" + limit + " bytes)");
        }
    }
}
