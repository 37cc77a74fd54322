/** The OpenTelemetry SDK with in-memory exporters, fed by registerTokenBindingTelemetry. */
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type MetricData } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { registerTokenBindingTelemetry } from '../../src/metrics/otel.js';

export interface Telemetry {
  readonly spans: InMemorySpanExporter;
  collect(): Promise<MetricData[]>;
  close(): Promise<void>;
}

export async function inMemoryTelemetry(): Promise<Telemetry> {
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  const telemetry = await registerTokenBindingTelemetry({ tracerProvider, meterProvider });
  return {
    spans,
    collect: async () => {
      await reader.forceFlush();
      const last = exporter.getMetrics().at(-1);
      return last === undefined ? [] : last.scopeMetrics.flatMap((s) => s.metrics);
    },
    close: async () => {
      telemetry.unregister();
      await Promise.all([meterProvider.shutdown(), tracerProvider.shutdown()]);
    },
  };
}

/** The sum of the data points of `name` whose attributes include `where` (histograms: the count). */
export function otelTotal(metrics: readonly MetricData[], name: string, where: Record<string, string> = {}): number {
  let sum = 0;
  for (const m of metrics) {
    if (m.descriptor.name !== name) continue;
    for (const p of m.dataPoints as { attributes: Record<string, unknown>; value: unknown }[]) {
      if (!Object.entries(where).every(([k, v]) => p.attributes[k] === v)) continue;
      sum += typeof p.value === 'number' ? p.value : (p.value as { count: number }).count;
    }
  }
  return sum;
}

