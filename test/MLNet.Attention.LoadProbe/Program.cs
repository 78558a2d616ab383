// Fresh-process load probe: loads an ML.NET model zip with `new MLContext().Model.Load` (NO registration call: ML.NET
// must find and register the MLNet.Attention loader from the model header alone), scores deterministic rows and
// prints the requested output column bit-exactly.
//
// Usage: dotnet MLNet.Attention.LoadProbe.dll <model.zip> <rows> <features> <outputColumn>
//    or: dotnet MLNet.Attention.LoadProbe.dll forecast <model.zip> <series.csv>   (prints Forecast() of a forecasting model)
//    or: dotnet MLNet.Attention.LoadProbe.dll scalar-race <seconds>   (TorchSharp Scalar finalizer race, ScalarRaceProbe)
// Output: "TYPE <transformer type>" lines, then "ROW <hex bits...>" per row, then "DONE". Exit code 0 on success,
// 3 on a load/scoring exception (printed as "ERROR <type>: <message>" for each exception in the chain), 2 on bad usage.

using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.LoadProbe;

if (args.Length == 2 && args[0] == "scalar-race")
    return MLNet.Attention.LoadProbe.ScalarRaceProbe.Run(args[1]);

if (args.Length == 3 && args[0] == "forecast")
    return ForecastProbe.Run(args[1], args[2]);

if (args.Length != 4)
{
    Console.Error.WriteLine("Usage: MLNet.Attention.LoadProbe <model.zip> <rows> <features> <outputColumn>");
    return 2;
}

try
{
    var ml = new MLContext(seed: 1);
    var model = ml.Model.Load(args[0], out _);
    using (model as IDisposable)
    {
        foreach (var t in model is TransformerChain<ITransformer> chain ? chain.AsEnumerable() : new[] { model })
            Console.WriteLine("TYPE " + t.GetType().FullName);
        int rows = int.Parse(args[1], CultureInfo.InvariantCulture);
        int features = int.Parse(args[2], CultureInfo.InvariantCulture);
        var scored = model.Transform(ProbeData.View(ml, rows, features));
        foreach (var line in ProbeData.FormatColumn(scored, args[3]))
            Console.WriteLine("ROW " + line);
    }
    Console.WriteLine("DONE");
    return 0;
}
catch (Exception ex)
{
    return ForecastProbe.ReportFailure(ex);
}
