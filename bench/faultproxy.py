"""bench/faultproxy.py: a TCP proxy that fails on demand, between the cafés and PostgreSQL.

bench/soak starts one per café (`FaultProxy(upstream).start()` gives the port to put in
the café's --database-url) and switches it from its timeline:

  - pass()      bytes flow both ways as they come (the start);
  - stall()     nothing flows and new connections wait, but nothing is closed: what a
                partitioned network or a frozen database looks like from the café;
  - slow(s)     every chunk waits `s` seconds before it is passed on: a congested link;
  - cut()       every open connection is aborted at once (a reset, as when the database
                restarts); new connections pass.

It is asyncio on a thread of its own (standard library only): one coroutine per direction
of each connection reads a chunk, waits at the gate the current mode sets, and writes it on.
Waiting at the gate does not read, so a stalled connection fills its socket buffers and the
sender's writes block, as they would on a real stalled link.
"""

import asyncio
import threading


class FaultProxy:
    def __init__(self, upstream_host, upstream_port):
        self.upstream = (upstream_host, upstream_port)
        self.port = None
        self.delay = 0.0
        self.connections = set()  # (client writer, upstream writer) of each open connection
        self.loop = asyncio.new_event_loop()
        self.flowing = None  # set while not stalled; made on the loop
        self.thread = threading.Thread(target=self.loop.run_forever, name="faultproxy",
                                       daemon=True)

    def start(self):
        """Listens on a free 127.0.0.1 port; returns it."""
        self.thread.start()
        return self.call(self.listen())

    def call(self, coroutine):
        """Runs `coroutine` on the proxy's loop and waits for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    async def listen(self):
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def serve(self, client_reader, client_writer):
        await self.flowing.wait()  # a stalled proxy holds new connections too
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.transport.abort()
            return
        pair = (client_writer, upstream_writer)
        self.connections.add(pair)
        try:
            await asyncio.gather(self.pump(client_reader, upstream_writer),
                                 self.pump(upstream_reader, client_writer))
        finally:
            self.connections.discard(pair)
            for writer in pair:
                writer.transport.abort()

    async def pump(self, reader, writer):
        try:
            while chunk := await reader.read(65536):
                await self.flowing.wait()
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # One side ended: end the other, so the pair's other pump ends too.
            writer.transport.abort()

    # -------------------------------------------------------- the switches (any thread)

    def pass_(self):
        self.delay = 0.0
        self.loop.call_soon_threadsafe(self.flowing.set)

    def stall(self):
        self.loop.call_soon_threadsafe(self.flowing.clear)

    def slow(self, seconds):
        self.delay = seconds
        self.loop.call_soon_threadsafe(self.flowing.set)

    def cut(self):
        """Aborts every open connection; returns how many there were."""
        async def abort_all():
            return self.abort_all()
        return self.call(abort_all())

    def close(self):
        async def shut():
            self.server.close()
            self.abort_all()
        self.call(shut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def abort_all(self):
        """On the loop: aborts every open connection, and says how many there were."""
        pairs = list(self.connections)
        for pair in pairs:
            for writer in pair:
                writer.transport.abort()
        return len(pairs)
