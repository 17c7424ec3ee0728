//! The router as a language model: the prompt it reads and the chat template that frames it.
//! (The ONNX runtime that runs it lands here too; the training crate renders the same prompt,
//! so a policy is trained on exactly the text it is served.)

pub mod chat_template;
pub mod prompt;

pub use chat_template::{ChatMessage, ChatTemplate};
pub use prompt::RouterPrompt;
