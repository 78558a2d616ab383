using System.Globalization;
using System.Reflection;
using System.Text.Json;
using Google.Protobuf;
using MLNet.Attention.Forecasting;
using MLNet.Attention.OnnxExport;
using static TorchSharp.torch;

namespace MLNet.Attention;

/// <summary>
/// ONNX export of the forecasters: an opset-17 graph with a dynamic <c>batch</c> dimension that scores windows as the
/// model's own <c>Transform</c> does, scaling and inverse scaling included, so that ONNX Runtime or
/// <c>mlContext.Transforms.ApplyOnnxModel</c> forecasts without TorchSharp or libtorch.
/// </summary>
/// <remarks>
/// <para>Inputs, one row per window, as <see cref="ForecastingModel.CreateWindows"/> writes them:
/// the model's <c>Lookback</c> column (named as <c>model.InputColumns[0].Name</c>), float
/// <c>[batch, L·C]</c>, time-major (step t's C channels at t·C), raw values in original units: the variates, then the
/// past covariates, then the known-future covariates; with known-future covariates also their horizon values
/// (the model's <c>FutureCovariates</c> column), float <c>[batch, S·F]</c>; with calendar covariates
/// (<see cref="ForecastingModel.CalendarFeatures"/> not None) <see cref="CalendarInputName"/>, float
/// <c>[batch, L·M]</c>: ONNX cannot compute calendar features from a <c>DateTime</c>, so the window's features replace
/// its <c>Timestamp</c> column; compute them with <see cref="OnnxCalendarInput"/>.</para>
/// <para>Outputs: the model's <c>Forecast</c> column, float <c>[batch, S·N]</c> (step-major, the same values and order
/// as the column's Vector&lt;Single, S, N&gt;), and with prediction intervals its <c>Lower</c> and <c>Upper</c>
/// columns (the forecast ∓ the calibrated half-widths at the trained coverage).</para>
/// <para>Missing values (NaN) in the inputs: a model trained with <c>MissingValues = ZeroFill</c> zero-fills them after
/// scaling inside the graph (and, for the MVPA forecaster, passes the observed mask), as <c>Transform</c> does. A
/// model trained with <c>MissingValues = Refuse</c> has no such step, so a NaN input gives NaN forecasts where
/// <c>Transform</c> throws; a graph cannot raise an error. A window whose lookback is entirely missing, which
/// <c>Transform</c> refuses, is forecast from zeros by the graph.</para>
/// <para>Metadata (<c>ModelProto.metadata_props</c>): <c>model</c>, <c>lookback</c>, <c>horizon</c>,
/// <c>variates</c> (a JSON array), <c>past_covariates</c>, <c>future_covariates</c>, <c>calendar</c>,
/// <c>calendar_features</c>, <c>frequency</c> (a TimeSpan, "c" format; empty when unknown), <c>missing_values</c>,
/// <c>interval_coverage</c>, and the network's settings.</para>
/// </remarks>
public static class ForecastingOnnxExportExtensions
{
    /// <summary>The graph input of the calendar covariates of a model that uses them.</summary>
    public const string CalendarInputName = "CalendarFeatures";

    /// <summary>Writes the iTransformer as an ONNX file at <paramref name="path"/> (created or overwritten once the graph
    /// is complete); the graph's inputs and outputs are described on <see cref="ForecastingOnnxExportExtensions"/>.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    /// <exception cref="NotSupportedException">A part of the model cannot be exported (the message names it).</exception>
    public static void ExportToOnnx(this InvertedTransformerModel model, string path)
        => Write(() => ForecastingModelExport.InvertedTransformer(Check(model)), path);

    /// <summary>As <see cref="ExportToOnnx(InvertedTransformerModel, string)"/>, to a stream (left open, positioned
    /// after the model).</summary>
    /// <exception cref="ArgumentException">The stream is not writable.</exception>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    public static void ExportToOnnx(this InvertedTransformerModel model, Stream stream)
        => Write(() => ForecastingModelExport.InvertedTransformer(Check(model)), stream);

    /// <summary>Writes the MVPA forecaster as an ONNX file (inputs and outputs as described on
    /// <see cref="ForecastingOnnxExportExtensions"/>; the observed mask it reads is computed in the graph from the NaN
    /// entries of the window). Its token grid (segments × channels) is fixed by the model, so the relative keys and
    /// masks are constants of the graph.</summary>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    public static void ExportToOnnx(this MultiVariateParallelTransformerModel model, string path)
        => Write(() => ForecastingModelExport.MultiVariateParallelTransformer(Check(model)), path);

    /// <summary>As <see cref="ExportToOnnx(MultiVariateParallelTransformerModel, string)"/>, to a stream (left
    /// open).</summary>
    /// <exception cref="ArgumentException">The stream is not writable.</exception>
    public static void ExportToOnnx(this MultiVariateParallelTransformerModel model, Stream stream)
        => Write(() => ForecastingModelExport.MultiVariateParallelTransformer(Check(model)), stream);

    /// <summary>Writes the CRIB forecaster as an ONNX file (inputs and outputs as described on
    /// <see cref="ForecastingOnnxExportExtensions"/>; CRIB reads no covariates). The graph is the forecast path only:
    /// the information-bottleneck head and the second view feed the training loss, not the forecast.</summary>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    public static void ExportToOnnx(this CribModel model, string path)
        => Write(() => ForecastingModelExport.Crib(Check(model)), path);

    /// <summary>As <see cref="ExportToOnnx(CribModel, string)"/>, to a stream (left open).</summary>
    /// <exception cref="ArgumentException">The stream is not writable.</exception>
    public static void ExportToOnnx(this CribModel model, Stream stream)
        => Write(() => ForecastingModelExport.Crib(Check(model)), stream);

    /// <summary>
    /// The <see cref="CalendarInputName"/> row of the window whose last lookback step is at
    /// <paramref name="windowTimestamp"/> (the window's <c>Timestamp</c> column): L·M floats, step t's M features at t·M,
    /// the steps dated back by the model's <see cref="ForecastingModel.Frequency"/>, as <c>Transform</c> computes them.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model has no calendar covariates, or no frequency.</exception>
    public static float[] OnnxCalendarInput(this ForecastingModel model, DateTime windowTimestamp)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.CalendarFeatures == Forecasting.CalendarFeatures.None)
            throw new InvalidOperationException($"{model.Name} has no calendar covariates: its ONNX graph has no " +
                $"{CalendarInputName} input.");
        var step = model.Frequency ?? throw new InvalidOperationException(
            $"{model.Name} does not know the series frequency needed to date the lookback steps.");
        int l = model.Lookback, m = CalendarFeatureEncoder.Count(model.CalendarFeatures);
        var features = new float[l * m];
        for (int t = 0; t < l; t++)
            CalendarFeatureEncoder.Encode(model.CalendarFeatures, windowTimestamp - (l - 1 - t) * step,
                features.AsSpan(t * m, m));
        return features;
    }

    private static T Check<T>(T model) where T : class => model ?? throw new ArgumentNullException(nameof(model));

    // The graph is complete before anything is written: a failed export leaves no partial file.
    private static void Write(Func<global::Onnx.ModelProto> build, string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        File.WriteAllBytes(path, build().ToByteArray());
    }

    private static void Write(Func<global::Onnx.ModelProto> build, Stream stream)
    {
        OnnxExportExtensions.CheckWritable(stream);
        build().WriteTo(stream);
        stream.Flush();
    }
}

/// <summary>Builds the ONNX models of the forecasters: the input scaling and missing-value fill, the network, the
/// inverse scaling and the interval bounds.</summary>
internal static class ForecastingModelExport
{
    private static string ProducerVersion => typeof(ForecastingModelExport).Assembly
        .GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0";

    /// <summary>The inputs of a forecasting network: the scaled window [B, L, C] (missing entries 0 when the model
    /// allows them), the observed mask [B, L, C] (1 = observed; null unless the network reads it), the
    /// calendar covariates [B, L, M] and the scaled future covariates [B, S, F] (null without them).</summary>
    internal readonly record struct NetworkInputs(OnnxValue Window, OnnxValue? Observed, OnnxValue? Calendar,
        OnnxValue? Future);

    /// <summary>The iTransformer: it reads no observed mask (the toolkit zero-fills and ignores it).</summary>
    public static global::Onnx.ModelProto InvertedTransformer(InvertedTransformerModel model)
    {
        CheckUsable(model);
        var c = model.Config;
        return Build(model, "InvertedTransformer", needsMask: false,
            (context, inputs) => ForecastingExporters.InvertedTransformer(context, model.Network, inputs.Window,
                inputs.Calendar, inputs.Future),
            new()
            {
                ["model_width"] = Invariant(c.ModelWidth), ["heads"] = Invariant(c.Heads),
                ["layers"] = Invariant(c.Layers), ["activation"] = c.Activation,
                ["use_norm"] = c.UseNorm ? "true" : "false",
            });
    }

    /// <summary>The export of <paramref name="transformer"/> when it is a forecaster that can be exported, else null
    /// (for <c>mlContext.Model.ExportToOnnx</c>).</summary>
    public static Func<global::Onnx.ModelProto>? For(Microsoft.ML.ITransformer transformer) => transformer switch
    {
        InvertedTransformerModel itransformer => () => InvertedTransformer(itransformer),
        MultiVariateParallelTransformerModel mvpa => () => MultiVariateParallelTransformer(mvpa),
        CribModel crib => () => Crib(crib),
        _ => null,
    };

    /// <summary>The MVPA forecaster: it reads the observed mask (1 − IsNaN of the window).</summary>
    public static global::Onnx.ModelProto MultiVariateParallelTransformer(MultiVariateParallelTransformerModel model)
    {
        CheckUsable(model);
        var c = model.Config;
        return Build(model, "MultiVariateParallelTransformer", needsMask: true,
            (context, inputs) => ForecastingExporters.MultiVariateParallelTransformer(context, model.Network,
                inputs.Window, inputs.Observed!.Value, inputs.Calendar),
            new()
            {
                ["patch_length"] = Invariant(c.PatchLength), ["model_width"] = Invariant(c.ModelWidth),
                ["heads"] = Invariant(c.Heads), ["key_value_heads"] = Invariant(c.KeyValueHeads),
                ["layers"] = Invariant(c.Layers), ["window"] = Invariant(c.Window),
                ["use_norm"] = c.UseNorm ? "true" : "false",
            });
    }

    /// <summary>CRIB: the zero-filled window alone (its mask only zero-fills, which the graph has done).</summary>
    public static global::Onnx.ModelProto Crib(CribModel model)
    {
        CheckUsable(model);
        var c = model.Config;
        return Build(model, "Crib", needsMask: false,
            (context, inputs) => CribExporters.Network(context, model.Network, inputs.Window),
            new()
            {
                ["patch_length"] = Invariant(c.PatchLength), ["model_width"] = Invariant(c.ModelWidth),
                ["heads"] = Invariant(c.Heads), ["layers"] = Invariant(c.Layers), ["activation"] = c.Activation,
            });
    }

    private static void CheckUsable(ForecastingModel model)
    {
        if (model.IsDisposed)
            throw new ObjectDisposedException(model.GetType().Name, $"The {model.Name} forecaster was disposed, so its " +
                "weights are gone; export it before disposing it, or load it again (mlContext.Model.Load) and export " +
                "that.");
    }

    private static global::Onnx.ModelProto Build(ForecastingModel model, string graphName, bool needsMask,
        Func<OnnxExportContext, NetworkInputs, OnnxValue> network, Dictionary<string, string> extra)
    {
        var scorer = model.ExportScorer;
        var info = scorer.Info;
        int l = info.Lookback, s = info.Horizon, n = info.VariateCount, ch = scorer.Channels;
        int m = info.CovariateCount, f = scorer.Covariates.Future.Length;
        bool allowsMissing = scorer.Policies.AllowsMissing;
        var graph = new OnnxGraphBuilder(graphName);
        var lookback = graph.Input(info.LookbackColumnName, -1, (long)l * ch);
        OnnxValue? future = f > 0 ? graph.Input(scorer.Covariates.FutureColumnName, -1, (long)s * f) : null;
        OnnxValue? calendar = m > 0
            ? graph.Input(ForecastingOnnxExportExtensions.CalendarInputName, -1, (long)l * m) : null;

        // (x − μ) / σ per channel with the fitted input scaler, as ForecastScorer.ForecastOriginal; then the fill.
        var mean = scorer.InputScaler.Mean.ToArray();
        var std = scorer.InputScaler.Std.ToArray();
        var window = graph.Reshape(lookback, new long[] { 0, l, ch }, "window");
        var scaled = graph.Div(graph.Sub(window, graph.Initializer("scaler.mean", mean, ch), "scaler.centred"),
            graph.Initializer("scaler.std", std, ch), "scaler.scaled");
        // The observed mask is all ones unless a NaN is present, as the scorer's (null when nothing is missing).
        OnnxValue? observed = needsMask ? graph.Sub(graph.Scalar("observed.one", 1f),
            graph.Cast(graph.IsNaN(scaled, "observed.missing"), "observed.missing_float"), "observed") : null;
        if (allowsMissing) scaled = graph.FillNaN(scaled, 0f, "scaler.filled");
        OnnxValue? scaledFuture = null;
        if (future is { } ahead)
        {
            var rows = graph.Reshape(ahead, new long[] { 0, s, f }, "future");
            scaledFuture = graph.Div(graph.Sub(rows, graph.Initializer("future.mean", mean[(ch - f)..], f),
                "future.centred"), graph.Initializer("future.std", std[(ch - f)..], f), "future.scaled");
            if (allowsMissing) scaledFuture = graph.FillNaN(scaledFuture.Value, 0f, "future.filled");
        }
        OnnxValue? marks = calendar is { } cal ? graph.Reshape(cal, new long[] { 0, l, m }, "calendar") : null;

        OnnxValue y;
        using (no_grad())
        using (NewDisposeScope())
            y = network(new OnnxExportContext(graph), new NetworkInputs(scaled, observed, marks, scaledFuture));
        if (y.Rank != 3 || y.Shape[1] != s || y.Shape[2] < n)
            throw new InvalidOperationException(
                $"ONNX export: the {graphName} graph gives {y}; expected [batch, {s}, ≥ {n}].");
        // The toolkit keeps the first N channels (the variates), then maps them back to original units.
        if (y.Shape[2] > n) y = graph.Slice(y, new long[] { 0 }, new long[] { n }, new long[] { 2 }, "forecast.variates");
        var original = graph.Add(graph.Mul(y, graph.Initializer("unscale.std", info.Scaler.Std.ToArray(), n),
            "unscale.scaled"), graph.Initializer("unscale.mean", info.Scaler.Mean.ToArray(), n), "unscale");
        var forecast = graph.Output(graph.Reshape(original, new long[] { 0, (long)s * n }, "forecast"),
            info.ForecastColumnName);
        if (scorer.Intervals is { } intervals)
        {
            var halfWidths = graph.Initializer("interval.half_width",
                scorer.HalfWidthsOriginalAt(intervals.Coverage, model.Name), (long)s * n);
            graph.Output(graph.Sub(forecast, halfWidths, "lower"), intervals.LowerColumnName);
            graph.Output(graph.Add(forecast, halfWidths, "upper"), intervals.UpperColumnName);
        }

        extra["model"] = model.Name;
        extra["lookback"] = Invariant(l);
        extra["horizon"] = Invariant(s);
        extra["variates"] = JsonSerializer.Serialize(info.Variates);
        extra["past_covariates"] = JsonSerializer.Serialize(scorer.Covariates.Past);
        extra["future_covariates"] = JsonSerializer.Serialize(scorer.Covariates.Future);
        extra["calendar"] = info.Calendar.ToString();
        extra["calendar_features"] = Invariant(m);
        extra["frequency"] = info.Frequency?.ToString("c", CultureInfo.InvariantCulture) ?? "";
        extra["missing_values"] = scorer.Policies.MissingValues.ToString();
        extra["interval_coverage"] = scorer.Intervals?.Coverage.ToString("R", CultureInfo.InvariantCulture) ?? "";
        return graph.Build(ProducerVersion, extra);
    }

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);
}
