// Runs MCP steps against a server with the official TypeScript SDK's client, prints their results.
//
//     node node_client.mjs URL KEY STEPS_JSON
//
// The same steps and output as python_client.py: `{"protocol_version", "steps": [...]}`.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";

const [url, key, stepsJson] = process.argv.slice(2);
const steps = JSON.parse(stepsJson);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const client = new Client({ name: "growth-engine-tests", version: "1.0.0" });
await client.connect(transport);
const results = [];
for (const step of steps) {
  try {
    if (step.list_tools) {
      const listed = await client.listTools();
      results.push({ tools: listed.tools.map((tool) => tool.name), definitions: listed.tools });
    } else {
      const result = await client.callTool({ name: step.tool, arguments: step.args ?? {} });
      const text = (result.content ?? []).map((block) => block.text ?? "").join("");
      results.push({ is_error: Boolean(result.isError), structured: result.structuredContent ?? null, text });
    }
  } catch (error) {
    if (error instanceof McpError) {
      results.push({ protocol_error: { code: error.code, message: error.message } });
    } else {
      throw error;
    }
  }
}
console.log(JSON.stringify({ protocol_version: transport.protocolVersion ?? null, steps: results }));
await client.close();
