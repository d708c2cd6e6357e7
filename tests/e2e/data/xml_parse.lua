-- upstream example 18-xml-yaml/xml_parse: XML text -> JSON (XP-2, vector XP-3).
local flow = Flow.new("xml_parse")

flow:step("catalog", nodes.xml_parse({
    input = '<catalog><book id="1"><title>Rust in Action</title>'
        .. "<price>39.99</price></book></catalog>",
    output_key = "catalog",
}))

-- Attribute values stay raw, text is entity-decoded, comments are ignored,
-- repeated siblings become an array and an empty element is null.
flow:step("shelf", nodes.template_render({
    template = '<shelf label="a&amp;b"><!-- note --><book>One</book>'
        .. "<book> Two &amp; Three </book><empty/></shelf>",
    output_key = "shelf_xml",
}))

flow:step("parse_shelf", nodes.xml_parse({
    source_key = "shelf_xml",
    output_key = "shelf",
})):depends_on("shelf")

return flow
