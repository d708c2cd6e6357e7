-- upstream example 07-advanced/hashing: digests of a literal text and of context values.
local flow = Flow.new("hashing")

flow:step("subject", nodes.template_render({
    template = "hello world",
    output_key = "subject",
}))

flow:step("sha256", nodes.hash({
    input = "${ctx.subject}",
    output_key = "sha256_result",
})):depends_on("subject")

flow:step("md5", nodes.hash({
    algorithm = "md5",
    source_key = "subject",
    output_key = "md5_result",
})):depends_on("subject")

flow:step("sha512", nodes.hash({
    algorithm = "SHA-512",
    input = "hello world",
    output_key = "sha512_result",
}))

-- A non-string value is hashed as its compact sorted JSON text (HS-2).
flow:step("object", function(ctx)
    return { record = { b = 2, a = 1 } }
end)

flow:step("object_hash", nodes.hash({
    source_key = "record",
})):depends_on("object")

return flow
