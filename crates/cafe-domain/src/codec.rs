//! The codec of every `cafe.v1` client and server: prost's encoding, with
//! buffers sized for the café's messages rather than tonic's default.
//!
//! tonic gives every call an encode buffer for the messages it sends and a
//! decode buffer for the ones it receives, both allocated up front at the
//! size the codec asks for ([`BufferSettings`]), 8 KiB unless told
//! otherwise. A server-streaming call (a buzzer, the board) keeps its
//! encode buffer for as long as the stream is open, and a client following
//! one keeps its decode buffer as long: an open buzzer order costs 8 KiB on
//! each side before it has sent a single event. The café's messages are a
//! few hundred bytes (an `OrderEvent` is under 300), so that buffer is
//! almost all empty.
//!
//! [`SmallBufferCodec`] is [`ProstCodec`] asking for [`BUFFER_SIZE`] bytes
//! (512) instead. Nothing is lost for a larger message: tonic grows a buffer
//! that is too small (the encoder as prost writes into it, the decoder to
//! the length a message's header announces), so a bigger message costs one
//! reallocation, not an error. `build.rs` names this codec
//! (`codec_path`), so the generated café and barista servers and clients,
//! and with them the CLI, all use it. The benchmark's floor
//! (`bench/floor`) deliberately does not: it measures tonic as it comes.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// The size a call's encode and decode buffers start at: a message of the
/// café's (an `OrderEvent`, an `OrderRequest`, the menu) and its 5-byte
/// gRPC header fit without growing it. jemalloc, the servers' allocator,
/// has a size class of exactly this. Smaller than a larger class by what
/// `docs/performance.md` ("Call buffers") measured per open buzzer.
pub const BUFFER_SIZE: usize = 512;

/// How many bytes of ready messages a stream gathers before handing them
/// to HTTP/2 in one piece: tonic's own default (32 KiB), kept. It bounds a
/// batch (the board's events when many change at once), it is not
/// allocated up front.
pub const YIELD_THRESHOLD: usize = 32 * 1024;

/// [`ProstCodec`] with [`BUFFER_SIZE`]-byte buffers; `T` is the message
/// encoded (sent), `U` the one decoded (received).
#[derive(Debug)]
pub struct SmallBufferCodec<T, U> {
    _messages: PhantomData<(T, U)>,
}

// By hand, not derived: a derive would require `T: Default` and
// `U: Default`, which the messages need not be, and the generated code
// builds its codec with `SmallBufferCodec::default()`.
impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        SmallBufferCodec {
            _messages: PhantomData,
        }
    }
}

/// The settings both directions use.
fn buffer_settings() -> BufferSettings {
    BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(buffer_settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(buffer_settings())
    }
}

#[cfg(test)]
mod tests {
    use futures::stream;
    use tonic::codec::{EncodeBody, Streaming};

    use super::*;
    use crate::proto::v1::{Order, OrderEvent};

    fn event(note: String) -> OrderEvent {
        OrderEvent {
            order: Some(Order {
                id: "0b9c6f0e-3c1a-4d2e-9f55-7a1e2b3c4d5e".into(),
                customer: "ana".into(),
                drink: "latte".into(),
                note,
                ..Default::default()
            }),
            queue_position: 3,
            claim_token: String::new(),
        }
    }

    #[tokio::test]
    async fn messages_larger_than_the_buffers_go_through_whole() {
        // A small event, one 20 times the buffers' starting size, and a
        // small one again: the buffers grow for the big one, and the
        // framing of the one after it is still right.
        let sent = vec![
            event(String::new()),
            event("x".repeat(20 * BUFFER_SIZE)),
            event("after the big one".into()),
        ];
        let mut codec = SmallBufferCodec::<OrderEvent, OrderEvent>::default();
        let body = EncodeBody::new_client(
            codec.encoder(),
            stream::iter(sent.clone().into_iter().map(Ok)),
            None,
            None,
        );
        let mut received = Streaming::new_request(codec.decoder(), body, None, None);

        let mut got = Vec::new();
        while let Some(event) = received.message().await.unwrap() {
            got.push(event);
        }
        assert_eq!(got, sent);
    }
}
