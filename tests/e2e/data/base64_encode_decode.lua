-- upstream example 07-advanced/base64_encode_decode: encode non-ASCII text, decode it back.
local flow = Flow.new("base64_encode_decode")

flow:step("text", nodes.template_render({
    template = "IronFlow workflow engine — Rust + Lua",
    output_key = "original",
}))

flow:step("encode", nodes.base64_encode({
    source_key = "original",
    output_key = "encoded",
})):depends_on("text")

flow:step("encode_url_safe", nodes.base64_encode({
    input = "${ctx.original}?>",
    url_safe = true,
    output_key = "encoded_url_safe",
})):depends_on("text")

flow:step("decode", nodes.base64_decode({
    source_key = "encoded",
    output_key = "decoded",
})):depends_on("encode")

flow:step("decode_url_safe", nodes.base64_decode({
    input = "${ctx.encoded_url_safe}",
    url_safe = "yes",
    output_key = "decoded_url_safe",
})):depends_on("encode_url_safe")

return flow
